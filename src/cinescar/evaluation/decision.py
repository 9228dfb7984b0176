"""Clinical utility: decision curves (net benefit) and what the screening cut-off means per 100 patients.

Why: the paper's claim is about a decision — skip gadolinium for patients very unlikely to have scar
("correctly identified 43 % of patients without scar"). A decision curve asks whether acting on the model beats
the two default policies at each threshold probability p_t a clinician might hold (Vickers & Elkin, Med Decis
Making 2006):

    net benefit(p_t) = TP/N − FP/N · p_t / (1 − p_t)        (model: LGE scan when p ≥ p_t)
    LGE for all      = prevalence − (1 − prevalence) · p_t / (1 − p_t)
    LGE for none     = 0

"Positive" means *LGE scan*, as everywhere in cinescar (p ≥ p_t, ties scanned). The curves read the model's
probabilities as risks, so they are only as good as its calibration (calibration.py): a model whose
probabilities are too high shows its benefit at thresholds shifted upwards. Written by hand (no scipy or
scikit-learn function computes net benefit); tests/test_decision.py checks it against a hand computation.

Per 100 patients at the operating point (interval: bootstrap.py):
LGE scans avoided = 100·(TN + FN)/N, scar-positive patients missed = 100·FN/N — on the cohort's own prevalence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinescar.errors import CinescarError
from cinescar.screening_rule import called_positive


def thresholds(start: float, stop: float, step: float) -> np.ndarray:
    """Threshold grid [start, stop] (inclusive) in steps of `step`, inside (0, 1)."""
    if not 0.0 < start <= stop < 1.0 or step <= 0:
        raise CinescarError(f"decision-curve thresholds need 0 < start ≤ stop < 1 and step > 0, "
                            f"got {start}, {stop}, {step}")  # fmt: skip
    grid = np.arange(start, stop + step / 2.0, step)
    return np.round(grid[grid < 1.0], 10)


def net_benefit(y_true: np.ndarray, prob: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Net benefit of scanning patients with prob ≥ p_t, for each threshold in `pt` (vectorised)."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    t = np.atleast_1d(np.asarray(pt, dtype=float))
    if y.size == 0:
        return np.full(t.shape, np.nan)
    scan = called_positive(p[None, :], t[:, None])
    tp = (scan & (y[None, :] == 1)).sum(axis=1)
    fp = (scan & (y[None, :] == 0)).sum(axis=1)
    return tp / y.size - fp / y.size * t / (1.0 - t)


def treat_all(y_true: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Net benefit of "LGE for all" at each threshold."""
    y = np.asarray(y_true).astype(int)
    t = np.atleast_1d(np.asarray(pt, dtype=float))
    prev = y.mean() if y.size else float("nan")
    return prev - (1.0 - prev) * t / (1.0 - t)


def decision_curve(y_true: np.ndarray, prob: np.ndarray, pt: np.ndarray) -> pd.DataFrame:
    """Columns threshold, net_benefit, treat_all, treat_none, plus the patients scanned per 100 at p_t."""
    t = np.atleast_1d(np.asarray(pt, dtype=float))
    p = np.asarray(prob, dtype=float)
    scanned = 100.0 * called_positive(p[None, :], t[:, None]).mean(axis=1) if p.size else np.full(t.shape, np.nan)
    return pd.DataFrame({"threshold": t, "net_benefit": net_benefit(y_true, p, t), "treat_all": treat_all(y_true, t),
                         "treat_none": np.zeros_like(t), "scanned_per_100": scanned})  # fmt: skip


def per_100(y_true: np.ndarray, prob: np.ndarray, cutoff: float) -> dict[str, float]:
    """LGE scans avoided and scar-positive patients missed per 100 patients at a cut-off (point values)."""
    y = np.asarray(y_true).astype(int)
    neg = ~called_positive(prob, cutoff)
    n = y.size
    if n == 0:
        return {"avoided_per_100": float("nan"), "missed_per_100": float("nan")}
    return {"avoided_per_100": 100.0 * neg.sum() / n, "missed_per_100": 100.0 * (neg & (y == 1)).sum() / n}
