"""The screening decision rule, in one place: a patient's probability is the maximum over its images; the
patient is positive when that probability is >= the cut-off.

Why one module: the evaluation (`cinescar.evaluation.screening`, `cinescar.evaluation.metrics`) and the
screening of a new exam (`cinescar.screening.screen`) must apply exactly the same rule, or a screened
patient would not get the decision the study reported for it. Kept free of scikit-learn and SciPy, so
that `cinescar screen` imports it cheaply. Ties at the cut-off are positive: a screening test errs towards
scanning.
"""

from __future__ import annotations

import numpy as np

PATIENT_AGGREGATE = "max"
"""How image probabilities become a patient's probability, as a pandas aggregation name (the paper: positive
if at least one image reaches the cut-off -- the same decision as thresholding the maximum)."""


def patient_probability(image_probs: np.ndarray) -> float | None:
    """The patient's probability: maximum over its images with a finite probability; None if there is none."""
    p = np.asarray(image_probs, dtype=np.float64)
    ok = np.isfinite(p)
    return float(p[ok].max()) if ok.any() else None


def called_positive(prob: np.ndarray | float, cutoff: float) -> np.ndarray:
    """True where the probability is >= the cut-off (ties positive)."""
    return np.asarray(prob, dtype=float) >= cutoff
