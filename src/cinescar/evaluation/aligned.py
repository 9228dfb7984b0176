"""Labels and probabilities of several models on the same patients — the one home of that alignment, shared by
the study's DeLong tables and the primary comparison (cinescar.evaluation.primary).

Why a module of its own: both need it, and the study imports the primary comparison; neither may import the other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinescar.errors import CinescarError, CohortError


def aligned(patients: dict[str, pd.DataFrame], picks: dict[str, int], cohort: str) -> tuple[np.ndarray, dict]:
    """Labels and per-model probabilities on the same patients (models may come from different folds)."""
    frames = {}
    for model, fold in picks.items():
        p = patients[model]
        frames[model] = p[(p["fold"] == fold) & (p["split"] == cohort)].set_index("patient_id")
    ids = {m: set(f.index) for m, f in frames.items()}
    first = next(iter(ids))
    for m, s in ids.items():
        if s != ids[first]:
            diff = sorted(s ^ ids[first])
            raise CohortError(f"models {first} and {m} were evaluated on different {cohort} patients "
                              f"({len(diff)} differ)", patient_id=diff[0])  # fmt: skip
    order = sorted(ids[first])
    y = frames[first].loc[order, "lge"].to_numpy(dtype=int)
    for m, f in frames.items():
        if not np.array_equal(f.loc[order, "lge"].to_numpy(dtype=int), y):
            raise CinescarError(f"models {first} and {m} disagree on LGE labels of {cohort} patients")
    return y, {m: f.loc[order, "prob"].to_numpy(dtype=float) for m, f in frames.items()}
