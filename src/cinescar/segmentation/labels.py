"""The segmenter's label map and the reference labels derived from the cohort contract's myocardium masks.

The contract's masks hold myocardium only (1). The LV cavity, needed for LV volumes and end-systole, is the
inside of a closed myocardium ring: `scipy.ndimage.binary_fill_holes` minus the myocardium. An open ring (a
basal slice cut through the outflow tract) gives no cavity on that slice, which is what a reader would draw.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BACKGROUND, MYOCARDIUM, LV_CAVITY = 0, 1, 2
LABELS = {"background": BACKGROUND, "myocardium": MYOCARDIUM, "lv_cavity": LV_CAVITY}
"""The one home of the label map (bundle metadata, DICOM SEG segments and the metrics read it)."""
CLASSES = {"myocardium": MYOCARDIUM, "lv_cavity": LV_CAVITY}
N_CLASSES = len(LABELS)
MYOCARDIAL_DENSITY_G_PER_ML = 1.05
"""LV mass = myocardial volume x 1.05 g/ml (the usual CMR convention)."""


def reference_labels(myocardium: np.ndarray) -> np.ndarray:
    """Labels (…, rows, cols) uint8 from a binary myocardium mask of one or more slices (leading axes)."""
    myo = np.asarray(myocardium) > 0
    out = np.zeros(myo.shape, np.uint8)
    flat_myo = myo.reshape((-1, *myo.shape[-2:]))
    flat_out = out.reshape((-1, *myo.shape[-2:]))
    for i, m in enumerate(flat_myo):
        if not m.any():
            continue
        cavity = ndimage.binary_fill_holes(m) & ~m
        flat_out[i][cavity] = LV_CAVITY
        flat_out[i][m] = MYOCARDIUM
    return out
