"""Patient-level metrics at a screening operating point, and ROC curves with confidence bands.

Conventions (also in docs/evaluation.md):
- a patient is *positive* (scar suspected, LGE scan needed) when its probability is ≥ the cut-off;
- AUC is exact (Mann–Whitney with midranks, = `sklearn.metrics.roc_auc_score`), not the reference code's
  100-threshold trapezoid;
- a ratio with an empty denominator (e.g. PPV when nobody is called positive) is NaN, never 0 or 1;
- "spared" counts the patients called negative, who would skip gadolinium: among scar-free patients
  that share is the specificity; among all patients it is (TN + FN) / N and includes the missed scars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_curve

from cinescar.evaluation.delong import delong_ci
from cinescar.errors import CinescarError
from cinescar.predictions import auc_or_nan  # noqa: F401 (re-exported: the one AUC of the study)
from cinescar.screening_rule import called_positive

METRIC_COLUMNS = [
    "n_patients", "n_pos", "n_neg", "tp", "fp", "tn", "fn",
    "sensitivity", "specificity", "ppv", "npv", "accuracy",
    "auc", "auc_ci_low", "auc_ci_high", "spared_scar_free", "spared_all",
]  # fmt: skip


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def confusion_counts(y_true: np.ndarray, prob: np.ndarray, cutoff: float) -> dict[str, int]:
    """TP/FP/TN/FN with the rule prob ≥ cut-off ⇒ positive."""
    y = np.asarray(y_true).astype(int)
    pred = called_positive(prob, cutoff).astype(int)
    # plain sums rather than sklearn.metrics.confusion_matrix: the same counts, without its input validation,
    # which cost ~10 ms a call and the evaluation makes thousands (every metrics row, subgroup, cohort)
    tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
    fn, tn = int(np.sum((1 - pred) & (y == 1))), int(np.sum((1 - pred) & (y == 0)))
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def screening_metrics(
    y_true: np.ndarray, prob: np.ndarray, cutoff: float, ci_level: float = 0.95
) -> dict[str, float]:
    """Every metric of the paper's Tables 3–4 (with PPV/NPV named correctly) at one cut-off."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape:
        raise CinescarError(f"labels ({y.shape}) and probabilities ({p.shape}) differ in shape")
    c = confusion_counts(y, p, cutoff)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    n = len(y)
    auc, lo, hi = auc_or_nan(y, p), float("nan"), float("nan")
    if y.sum() >= 2 and (1 - y).sum() >= 2:  # DeLong's variance needs two patients of each class
        _, lo, hi = delong_ci(y, p, level=ci_level)
        # DeLong's AUC equals the exact one up to float rounding; keep the interval around the reported AUC
        lo, hi = min(lo, auc), max(hi, auc)
    return {
        "n_patients": n,
        "n_pos": int(y.sum()),
        "n_neg": int(n - y.sum()),
        **c,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, n),
        "auc": auc,
        "auc_ci_low": lo,
        "auc_ci_high": hi,
        "spared_scar_free": _ratio(tn, tn + fp),
        "spared_all": _ratio(tn + fn, n),
    }


def roc_with_band(
    y_true: np.ndarray,
    score: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    grid_points: int = 101,
) -> pd.DataFrame:
    """ROC curve on a fixed FPR grid with a pointwise bootstrap band.

    Why bootstrap: DeLong gives the variance of the AUC, not of the curve at each false-positive rate.
    Patients are resampled with replacement *within each class* (stratified, so every replicate has both
    classes); each replicate's ROC is interpolated onto the grid and the band is the percentile interval.
    Returns columns fpr, tpr, tpr_low, tpr_high.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    if len(np.unique(y)) < 2:
        raise CinescarError("an ROC curve needs patients of both classes")
    grid = np.linspace(0.0, 1.0, grid_points)

    def _interp(yy: np.ndarray, ss: np.ndarray) -> np.ndarray:
        fpr, tpr, _ = roc_curve(yy, ss, drop_intermediate=False)
        # np.interp takes the last of repeated FPR values, i.e. the top of a vertical ROC segment.
        return np.interp(grid, fpr, tpr)

    tpr = _interp(y, s)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boots = np.empty((n_boot, grid_points))
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        boots[b] = _interp(y[idx], s[idx])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha], axis=0) if n_boot else (tpr, tpr)
    return pd.DataFrame({"fpr": grid, "tpr": tpr, "tpr_low": low, "tpr_high": high})


PROPORTIONS = {  # metric: (numerator, denominator) in confusion counts; per-100 counts are these × 100
    "sensitivity": (("tp",), ("tp", "fn")), "specificity": (("tn",), ("tn", "fp")),
    "ppv": (("tp",), ("tp", "fp")), "npv": (("tn",), ("tn", "fn")), "accuracy": (("tp", "tn"), ("tp", "tn", "fp", "fn")),
    "spared_scar_free": (("tn",), ("tn", "fp")), "spared_all": (("tn", "fn"), ("tp", "tn", "fp", "fn")),
    "avoided_per_100": (("tn", "fn"), ("tp", "tn", "fp", "fn")), "missed_per_100": (("fn",), ("tp", "tn", "fp", "fn")),
}  # fmt: skip


def wilson_intervals(counts: dict[str, int], level: float = 0.95) -> dict[str, float]:
    """`{metric}_low/_high` of every PROPORTIONS metric: Wilson score interval (`scipy.stats.binomtest`).

    Why beside the bootstrap: at a fixed cut-off these are binomial proportions, and with the handful of LGE+
    patients of a test cohort the percentile bootstrap collapses to 1.00–1.00 when all are caught
    (benchmarks/bootstrap_coverage.py: 53 % coverage at 5 LGE+); Wilson's interval keeps near-nominal coverage
    there. `evaluation.proportion_interval` chooses which one the tables show.
    """
    out: dict[str, float] = {}
    for name, (num, den) in PROPORTIONS.items():
        k, n = sum(counts[c] for c in num), sum(counts[c] for c in den)
        scale = 100.0 if name.endswith("_per_100") else 1.0
        if n == 0:
            out[f"{name}_low"] = out[f"{name}_high"] = float("nan")
            continue
        ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
        out[f"{name}_low"], out[f"{name}_high"] = scale * float(ci.low), scale * float(ci.high)
    return out
