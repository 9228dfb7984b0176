"""Per-image facts of the raw acquisition, measured once while preprocessing (nnU-Net's "fingerprint").

Why: the bundle's out-of-distribution check compares a new exam's pixel spacing, matrix size and raw
intensity range with those of the training images. Measuring them when the image is read for
preprocessing, and storing them in the preprocessing index, means neither the bundle (training ranges)
nor screening (the exam's own statistics) opens a raw image a second time.
"""

from __future__ import annotations

import numpy as np

FINGERPRINT_COLUMNS = ["spacing_x", "spacing_y", "orig_rows", "orig_cols", "intensity_p01", "intensity_p99"]
"""Index columns (one value per phase stack, repeated on each of its images) that describe the raw image."""


def intensity_percentiles(volume: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentile of a raw image volume's finite intensities.

    The statistic of the out-of-distribution check: robust to a few hot pixels, and it exposes an exam
    stored on another scale (e.g. intensities in [0, 1] where training images held scanner units).
    """
    values = np.asarray(volume, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [1.0, 99.0])
    return float(lo), float(hi)


def stack_fingerprint(stack: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """The raw facts of one (slices, rows, cols) stack with pixel spacing (x, y, ...)."""
    lo, hi = intensity_percentiles(stack)
    return {"spacing_x": spacing[0], "spacing_y": spacing[1], "orig_rows": stack.shape[1],
            "orig_cols": stack.shape[2], "intensity_p01": lo, "intensity_p99": hi}
