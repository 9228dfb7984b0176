"""Per-exam quality flags of a predicted segmentation: never silently wrong.

Without ground truth nobody sees a segmenter fail on a new scanner (MONAI model-zoo #766, nnU-Net #1908), so
each predicted stack is checked for what no real heart looks like. A flagged exam gets no confident screening
decision (`cinescar screen` answers "indeterminate", as for a broken exam); the workflow counts flags per
cohort role in `results/segmentation/qc.csv`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cinescar.segmentation.labels import LV_CAVITY, MYOCARDIUM

MIN_PIECE_FRACTION = 0.1
"""Myocardium pieces smaller than this share of the slice's myocardium are specks, not a second piece."""
MIN_CAVITY_PIXELS = 20
MIN_ENCLOSED_FRACTION = 0.5
"""A cavity of which less than this share lies inside the filled myocardium ring counts as not enclosed."""

QC_FLAGS = {
    "no_myocardium": "no slice holds predicted myocardium",
    "cavity_without_myocardium": "a slice holds an LV cavity but no myocardium around it",
    "open_ring": "a slice's LV cavity is not enclosed by its myocardium ring",
    "several_components": "a slice's myocardium falls into several sizeable pieces (each >= 10 % of it)",
    "lv_volume_implausible": "the end-diastolic LV cavity volume is outside the plausible range",
    "lv_mass_implausible": "the end-diastolic LV mass is outside the plausible range",
    "low_confidence": "the network's mean confidence over the predicted myocardium is low",
}
"""The one home of the flag names and what each means (results, report, docs)."""


def stack_flags(labels: np.ndarray, confidence: np.ndarray, qc: dict) -> list[str]:
    """Flags of one predicted stack (slices, rows, cols); `confidence` = highest class probability per pixel."""
    flags = []
    myo = labels == MYOCARDIUM
    if not myo.any():
        return ["no_myocardium"]
    for s in range(len(labels)):
        m, cav = myo[s], labels[s] == LV_CAVITY
        if cav.sum() >= MIN_CAVITY_PIXELS and not m.any():
            flags.append("cavity_without_myocardium")
        elif cav.sum() >= MIN_CAVITY_PIXELS and (ndimage.binary_fill_holes(m) & cav).sum() < MIN_ENCLOSED_FRACTION * cav.sum():
            flags.append("open_ring")
        pieces, n = ndimage.label(m)
        sizes = np.bincount(pieces.ravel())[1:]
        if n > 1 and (sizes >= MIN_PIECE_FRACTION * sizes.sum()).sum() > int(qc["max_components"]):
            flags.append("several_components")
    if float(confidence[myo].mean()) < float(qc["min_confidence"]):
        flags.append("low_confidence")
    return sorted(set(flags))


def exam_flags(stack_flags_by_phase: dict[str, list[str]], ed_volumes: dict[str, float], qc: dict) -> list[str]:
    """An exam's flags: its stacks' (prefixed by phase) plus the end-diastolic volume and mass ranges."""
    flags = [f"{phase}:{f}" for phase, fl in stack_flags_by_phase.items() for f in fl]
    lo, hi = qc["lv_edv_ml"]
    if not lo <= ed_volumes["lv_volume_ml"] <= hi:
        flags.append("ED:lv_volume_implausible")
    lo, hi = qc["lv_mass_g"]
    if not lo <= ed_volumes["lv_mass_g"] <= hi:
        flags.append("ED:lv_mass_implausible")
    return flags
