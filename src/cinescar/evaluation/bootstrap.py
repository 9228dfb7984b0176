"""Patient-level stratified bootstrap: an interval on every screening number.

Why a bootstrap: sensitivity, specificity, PPV, NPV, accuracy, LGE scans avoided and AUC differences are
reported on cohorts of a dozen to a few hundred patients; their sampling error is what a reader must weigh.
DeLong stays the interval of a single AUC (metrics.py); everything else gets a percentile interval from the
same resamples.

Rules (also in docs/evaluation.md, "Intervals"):
- **patients** are resampled (a patient's probability is already the maximum over its images), with
  replacement **within each LGE class** (stratified): every replicate holds the cohort's own numbers of LGE+
  and LGE− patients, so sensitivity and specificity are always defined and the prevalence is the cohort's;
- one resample matrix per set of patients is **shared by every model** scored on them, so differences between
  models are paired;
- the interval is the percentile interval of the replicates where the statistic is defined (PPV is undefined
  in a replicate that calls nobody positive); `nanquantile` ignores the undefined ones;
- seeded: the same seed and the same patients give the same interval.

Why by hand rather than `scipy.stats.bootstrap`: scipy resamples each sample independently (which would give
the stratification with the positives and negatives as two samples) but it cannot share one set of resamples
across several models and metrics, and its percentile interval turns NaN as soon as one replicate is
undefined. The resampling is ten lines of numpy; `tests/test_bootstrap.py` checks it against
`scipy.stats.bootstrap` and `benchmarks/bootstrap_coverage.py` measures its coverage.

Known limit: a proportion observed at 0 or 1 (e.g. every LGE+ patient caught) gives a degenerate interval
(1.00–1.00): every replicate catches them all. The percentile bootstrap cannot see beyond the patients it
has; the report says so next to such intervals.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
from scipy import stats

from cinescar.errors import CinescarError
from cinescar.screening_rule import called_positive

# metrics at a cut-off that get a bootstrap interval (names as in metrics.METRIC_COLUMNS, plus per-100 ones)
INTERVAL_METRICS = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "spared_scar_free", "spared_all",
                    "avoided_per_100", "missed_per_100")  # fmt: skip


def group_seed(seed: int, *key: object) -> int:
    """A seed for one set of patients that depends on the config seed and the set's name, not on loop order."""
    return (int(seed) * 1_000_003 + zlib.crc32("|".join(map(str, key)).encode())) % (2**32)


def stratified_resamples(y_true: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, N) patient indices: each row draws the LGE+ patients, then the LGE− ones, with replacement.

    The LGE+ columns come first (`y[idx[:, :m]] == 1` for m = number of LGE+ patients), which
    `auc_replicates` relies on.
    """
    y = np.asarray(y_true).astype(int)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if n_boot < 1:
        raise CinescarError(f"n_bootstrap must be ≥ 1 for an interval, got {n_boot}")
    rng = np.random.default_rng(seed)
    idx = np.empty((int(n_boot), y.size), dtype=np.int64)
    idx[:, : pos.size] = pos[rng.integers(0, pos.size, (n_boot, pos.size))] if pos.size else pos
    idx[:, pos.size:] = neg[rng.integers(0, neg.size, (n_boot, neg.size))] if neg.size else neg
    return idx


def percentile_interval(replicates: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the defined (non-NaN) replicates; NaN where no replicate is defined."""
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():  # an all-NaN slice (statistic never defined) is NaN, said in the report
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(np.asarray(replicates, dtype=float), [alpha, 1.0 - alpha], axis=axis)
    return lo, hi


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def screening_replicates(y_true: np.ndarray, prob: np.ndarray, cutoff: float, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of INTERVAL_METRICS in each replicate (rows of `idx`), rule prob ≥ cut-off ⇒ positive.

    avoided_per_100 = 100·(TN + FN)/N: patients called negative, who would skip the LGE scan;
    missed_per_100 = 100·FN/N: scar-positive patients among them.
    """
    y = np.asarray(y_true).astype(int)[idx]
    pred = called_positive(np.asarray(prob, dtype=float)[idx], cutoff).astype(int)
    tp = (pred & y).sum(axis=1)
    fp = (pred & (1 - y)).sum(axis=1)
    fn = ((1 - pred) & y).sum(axis=1)
    tn = ((1 - pred) & (1 - y)).sum(axis=1)
    n = idx.shape[1]
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, np.full_like(tp, n)),
        "spared_scar_free": _ratio(tn, tn + fp),
        "spared_all": _ratio(tn + fn, np.full_like(tp, n)),
        "avoided_per_100": 100.0 * _ratio(tn + fn, np.full_like(tp, n)),
        "missed_per_100": 100.0 * _ratio(fn, np.full_like(tp, n)),
    }


def screening_intervals(y_true: np.ndarray, prob: np.ndarray, cutoff: float, idx: np.ndarray,
                        level: float = 0.95) -> dict[str, float]:  # fmt: skip
    """`{metric}_low`, `{metric}_high` for every metric of INTERVAL_METRICS."""
    out: dict[str, float] = {}
    for name, rep in screening_replicates(y_true, prob, cutoff, idx).items():
        lo, hi = percentile_interval(rep, level)
        out[f"{name}_low"], out[f"{name}_high"] = float(lo), float(hi)
    return out


def auc_replicates(y_true: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Exact (Mann–Whitney) AUC of each replicate, vectorised with midranks along the rows.

    `idx` must come from `stratified_resamples` (LGE+ columns first), so each row has m positives and n negatives.
    """
    y = np.asarray(y_true).astype(int)
    m = int(y.sum())
    n = y.size - m
    if m == 0 or n == 0:
        return np.full(idx.shape[0], np.nan)
    ranks = stats.rankdata(np.asarray(score, dtype=float)[idx], method="average", axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)


def auc_difference_interval(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, idx: np.ndarray,
                            level: float = 0.95) -> tuple[float, float]:  # fmt: skip
    """Percentile interval of AUC_a − AUC_b over paired resamples (the same patients in both)."""
    d = auc_replicates(y_true, score_a, idx) - auc_replicates(y_true, score_b, idx)
    lo, hi = percentile_interval(d, level)
    return float(lo), float(hi)
