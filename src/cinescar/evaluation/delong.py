"""DeLong's test for correlated ROC curves (fast midrank algorithm of Sun & Xu, 2014).

The paper compares the AUCs of its three models with DeLong's test; neither scipy nor scikit-learn
implements it, so it is written here. The fast algorithm replaces DeLong's O(m·n) placement values by
midranks: for k score vectors over m positive and n negative patients

    V10_i = (rank of positive i among all − rank among positives) / n     (placement of positive i)
    V01_j = 1 − (rank of negative j among all − rank among negatives) / m
    AUC   = mean(V10) ,   Cov(AUC) = S10 / m + S01 / n

where S10, S01 are the k × k sample covariances of the placement values. Midranks come from
`scipy.stats.rankdata(method="average")`, so ties count ½ exactly as in the Mann–Whitney U statistic
and in `sklearn.metrics.roc_auc_score`.

References: DeLong, DeLong & Clarke-Pearson, Biometrics 44:837 (1988); Sun & Xu, IEEE Signal
Processing Letters 21:1389 (2014).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from cinescar.errors import CinescarError


@dataclass(frozen=True)
class DeLongResult:
    """Two-sided DeLong test of AUC_a = AUC_b on the same patients."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check_labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise CinescarError(f"labels must be one-dimensional, got shape {y.shape}")
    uniq = set(np.unique(y).tolist())
    if not uniq <= {0, 1, True, False}:
        raise CinescarError(f"labels must be 0/1, got values {sorted(uniq)}")
    y = y.astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        # The placement-value covariance needs two of each class; with fewer the variance is undefined.
        raise CinescarError(
            f"DeLong needs at least 2 positive and 2 negative patients, got {m} positive and {n} negative"
        )
    return y


def fast_delong(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for k score vectors on the same patients.

    `scores` has shape (k, N) (or (N,) for one model). Returns (aucs of shape (k,), cov of shape (k, k)).
    """
    y = _check_labels(y_true)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.shape[1] != y.size:
        raise CinescarError(f"scores have {s.shape[1]} patients but labels have {y.size}")
    if not np.all(np.isfinite(s)):
        raise CinescarError("scores contain NaN or infinite values")
    pos, neg = s[:, y], s[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tx = stats.rankdata(pos, method="average", axis=1)
    ty = stats.rankdata(neg, method="average", axis=1)
    tz = stats.rankdata(np.concatenate([pos, neg], axis=1), method="average", axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    sx = np.atleast_2d(np.cov(v10))
    sy = np.atleast_2d(np.cov(v01))
    return aucs, sx / m + sy / n


def delong_variance(y_true: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC, DeLong variance of the AUC) for one model."""
    aucs, cov = fast_delong(y_true, score)
    return float(aucs[0]), float(cov[0, 0])


def delong_ci(y_true: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, lower, upper): Wald interval AUC ± z·sqrt(Var_DeLong), clipped to [0, 1]."""
    auc, var = delong_variance(y_true, score)
    half = stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(max(var, 0.0))
    return auc, float(max(0.0, auc - half)), float(min(1.0, auc + half))


def delong_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLongResult:
    """Two-sided DeLong test for two correlated ROC curves (same patients, same labels).

    When the variance of the difference is zero (identical rankings, e.g. identical predictions) the
    difference is necessarily zero too and p = 1 by definition.
    """
    aucs, cov = fast_delong(y_true, np.vstack([score_a, score_b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 1e-15:
        return DeLongResult(float(aucs[0]), float(aucs[1]), diff, 0.0, 0.0, 1.0)
    se = float(np.sqrt(var))
    z = diff / se
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, se, z, float(2.0 * stats.norm.sf(abs(z))))


def pairwise_delong(y_true: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """DeLong test between every pair of models; one row per pair (model_a, model_b, auc_a, ..., p)."""
    rows = []
    for a, b in combinations(scores, 2):
        res = delong_test(y_true, scores[a], scores[b])
        rows.append({"model_a": a, "model_b": b, **res.as_dict()})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "auc_a", "auc_b", "diff", "se", "z", "p"])
