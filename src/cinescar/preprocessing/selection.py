"""Development image selection (paper, "Image preparation and labeling").

To temper the imbalance between scar and scar-free images, development uses only 6 mid-ventricular slices
of LGE- patients and only the slices with scar of LGE+ patients; testing uses every slice because a new
patient's status is unknown.

Where a cohort has no per-slice LGE reading, an LGE+ patient contributes the same mid-ventricular slices as an
LGE- patient (image label = patient label). The authors' code used every slice of LGE+ patients; on ACDC that
taught the models a shortcut -- basal and apical slices appeared only with label 1, so any patient's
apex scored high and the patient-level maximum fell to chance (docs/acdc.md). Selecting the same slice
positions for both labels removes slice position as a label cue.
"""

from __future__ import annotations

import pandas as pd


def mid_ventricular(slices: list[int], n: int) -> set[int]:
    """The n slices around the middle of the myocardium-bearing slices (all of them if fewer)."""
    ordered = sorted(slices)
    if len(ordered) <= n:
        return set(ordered)
    start = (len(ordered) - n) // 2
    return set(ordered[start:start + n])


def development_selection(index: pd.DataFrame, n_negative: int = 6) -> pd.Series:
    """Boolean Series aligned with `index`: would this image be used for development?"""
    selected = pd.Series(False, index=index.index)
    for (pid, phase), group in index.groupby(["patient_id", "phase"], sort=False):
        if int(group["lge"].iloc[0]) == 0:
            keep = mid_ventricular(group["slice"].tolist(), n_negative)
            selected.loc[group.index] = group["slice"].isin(keep).values
        else:
            flags = group["scar_slice"]
            if flags.isna().all():
                keep = mid_ventricular(group["slice"].tolist(), n_negative)
                selected.loc[group.index] = group["slice"].isin(keep).values
            else:
                selected.loc[group.index] = flags.fillna(False).astype(bool).values
    return selected
