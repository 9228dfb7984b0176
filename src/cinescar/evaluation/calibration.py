"""Calibration of patient probabilities: Brier score, calibration intercept and slope, reliability curve.

Why: a cut-off transfers between cohorts only if the probabilities mean the same thing in both; a decision
curve (decision.py) reads probabilities as risks. Discrimination (AUC) says nothing about either.

Definitions (Van Calster et al., J Clin Epidemiol 2016; Steyerberg, Clinical Prediction Models):
- Brier score = mean (p − y)² (`sklearn.metrics.brier_score_loss`);
- logistic recalibration on x = logit(p): y ~ Bernoulli(expit(a + b·x));
  **calibration slope** = b of the two-parameter fit (1 ideal; < 1: predictions too extreme);
  **calibration intercept** ("calibration-in-the-large") = a with b fixed to 1, i.e. x as an offset
  (0 ideal; < 0: predictions too high on average);
- reliability curve: `sklearn.calibration.calibration_curve`'s equal-width bins, plus the patients per bin.

Probabilities are clipped to [1e-6, 1 − 1e-6] before the logit (random forests output exact 0 and 1); the number
clipped is reported (`n_clipped`), and a note says the clip then sets part of the slope (0.22 / 0.38 / 0.52 for
clips 1e-6 / 1e-4 / 1e-3 in one simulated forest). When the classes are separated by p (AUC 0 or 1, ties at the
boundary included: quasi-complete separation), the slope's maximum-likelihood estimate is infinite: it is
reported as NaN with `slope_note = "separation"` rather than as a huge number; with at most NEAR_SEPARATION
patients in the overlap of the classes it is finite but set by those few ("near separation"), and NaN too. The two fits are unpenalised
maximum likelihood: the slope with `sklearn.linear_model.LogisticRegression(C=np.inf)` (no penalty), the offset-only
intercept by solving its one score equation Σ(y − expit(a + x)) = 0 with `scipy.optimize.brentq` (scikit-learn
has no offsets) — written by hand, checked in tests/test_calibration.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit, logit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

EPS = 1e-6
CALIBRATION_COLUMNS = ["n_patients", "n_pos", "n_clipped", "brier", "cal_intercept", "cal_slope", "slope_intercept",
                       "slope_note"]  # fmt: skip
NEAR_SEPARATION = 2
"""At most this many patients in the overlap (2: a single discordant pair at the boundary) of the two classes' probability ranges: the slope's MLE is finite
but set by those few patients (a slope of 16 from one overlapping pair), so it is flagged and not printed."""


def n_clipped(prob: np.ndarray) -> int:
    """Probabilities the logit had to clip (≤ EPS or ≥ 1 − EPS: a random forest's exact 0 and 1, float32
    saturation). Where there are any, the clip — not the model — sets their logit, and with it the slope."""
    p = np.asarray(prob, dtype=float)
    return int(np.sum((p <= EPS) | (p >= 1.0 - EPS)))


def overlap_count(y: np.ndarray, x: np.ndarray) -> int:
    """Patients inside the overlap of the two classes' score ranges (bounds included); 0 when one class lies
    entirely on one side, ties at the boundary allowed (complete or quasi-complete separation)."""
    pos, neg = x[y == 1], x[y == 0]
    if pos.min() >= neg.max() or pos.max() <= neg.min():
        return 0
    lo, hi = max(pos.min(), neg.min()), min(pos.max(), neg.max())
    return int(np.sum((x >= lo) & (x <= hi)))


def _logit(prob: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(prob, dtype=float), EPS, 1.0 - EPS))


def calibration_intercept(y_true: np.ndarray, prob: np.ndarray) -> float:
    """a in logit P(y=1) = a + logit(p) (slope fixed to 1); NaN if one class only (a would be ±∞)."""
    y = np.asarray(y_true, dtype=float)
    if y.min() == y.max():
        return float("nan")
    o = _logit(prob)

    def score(a: float) -> float:  # derivative of the log-likelihood in a; strictly decreasing
        return float(np.sum(y - expit(a + o)))

    lo, hi = -1.0, 1.0
    while score(lo) < 0:
        lo *= 2.0
    while score(hi) > 0:
        hi *= 2.0
    return float(optimize.brentq(score, lo, hi, xtol=1e-12))


def calibration_slope(y_true: np.ndarray, prob: np.ndarray) -> tuple[float, str]:
    """(b, note) of logit P(y=1) = a + b·logit(p); NaN with a note when undefined (one class, separation)."""
    b, _, note = recalibration_fit(y_true, prob)
    return b, note


def recalibration_fit(y_true: np.ndarray, prob: np.ndarray) -> tuple[float, float, str]:
    """(b, a, note) of the two-parameter logistic recalibration; NaNs with a note when undefined."""
    y = np.asarray(y_true).astype(int)
    x = _logit(prob)
    if y.min() == y.max():
        return float("nan"), float("nan"), "one class"
    if np.ptp(x) == 0:
        return float("nan"), float("nan"), "constant probability"
    overlap = overlap_count(y, x)
    if overlap == 0:
        return float("nan"), float("nan"), "separation"
    if overlap <= NEAR_SEPARATION:
        return float("nan"), float("nan"), f"near separation ({overlap} patient{'s' if overlap != 1 else ''} in the overlap)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            fit = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000, tol=1e-10).fit(x[:, None], y)
        except ConvergenceWarning:
            return float("nan"), float("nan"), "no convergence"
    return float(fit.coef_[0, 0]), float(fit.intercept_[0]), ""


def calibration_summary(y_true: np.ndarray, prob: np.ndarray) -> dict[str, object]:
    """Brier score, calibration intercept and slope of one model on one cohort."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    slope, slope_intercept, note = recalibration_fit(y, p)
    clipped = n_clipped(p)
    if clipped and not note:
        note = f"{clipped} probabilities clipped to [{EPS:g}, 1 − {EPS:g}]: the clip sets part of the slope"
    return {"n_patients": int(y.size), "n_pos": int(y.sum()), "n_clipped": clipped, "slope_intercept": slope_intercept,
            "brier": float(brier_score_loss(y, p, pos_label=1)) if y.size else float("nan"),
            "cal_intercept": calibration_intercept(y, p), "cal_slope": slope, "slope_note": note}  # fmt: skip


def reliability_table(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 5) -> pd.DataFrame:
    """Observed LGE+ share against mean probability per equal-width bin (non-empty bins), with n per bin.

    Bins are scikit-learn's `calibration_curve(strategy="uniform")` bins: edges 0, 1/n, …, 1, each bin
    (low, high] except the first, which also holds 0 — so a probability exactly on an edge (a random forest's
    60/300 = 0.2) falls in the bin *below* it. Counts, means and shares come from one assignment of patients to
    bins (np.searchsorted(..., side="left"), as scikit-learn does), so they cannot disagree;
    tests/test_calibration.py checks the points against `calibration_curve` on edge values.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], p, side="left")
    counts = np.bincount(which, minlength=n_bins)
    sums = np.bincount(which, weights=p, minlength=n_bins)
    events = np.bincount(which, weights=y, minlength=n_bins)
    nonempty = np.flatnonzero(counts)
    return pd.DataFrame({"bin": nonempty, "bin_low": edges[nonempty], "bin_high": edges[nonempty + 1],
                         "n": counts[nonempty], "mean_prob": sums[nonempty] / counts[nonempty],
                         "observed": events[nonempty] / counts[nonempty]})  # fmt: skip
