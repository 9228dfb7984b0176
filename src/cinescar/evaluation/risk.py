"""Probabilities read as risks: a flexible calibration curve with a bootstrap band, a recalibration fitted on
development patients only, and decision curves with bootstrap bands and net interventions avoided.

Why: balanced class weights and the maximum over a patient's images make the image models' outputs *scores*,
not risks (simulated calibration intercepts −0.69 and −1.66), yet a decision curve reads them as risks. Two
summary numbers (intercept, slope; calibration.py) cannot show where along the range a model is off; a curve
can, and the band says how much of its shape the patients support.

**Flexible curve.** Logistic regression of LGE on a restricted cubic spline of logit(p) with 3 knots at the
10th, 50th and 90th percentiles of logit(p) (Harrell, Regression Modeling Strategies, §2.4.5; the "flexible
calibration curve" of Van Calster et al. 2016 — a spline rather than loess, because a spline has a likelihood
and a bootstrap refit is cheap). With fewer than `MIN_PER_CLASS_SPLINE` patients in a class the spline has too
few events per parameter and the curve falls back to the linear (slope and intercept) fit; with fewer than 2 per
class, or (quasi-)separation, none is drawn. The band is the percentile band of refits on the stratified
bootstrap resamples, on a grid inside the 2.5–97.5th percentiles of p (no extrapolation). Fitted by
Newton–Raphson on all resamples at once (a 3 × 3 system per resample); a resample that does not converge
drops out of the band.

**Recalibration** (`evaluation.recalibration: logistic`): logit p* = a + b·logit p, with (a, b) fitted on the
pooled out-of-fold validation patients of the fold models — development patients only; applied unchanged
to the final model on test and external patients. Caveat: the mean final model averages the fold models, so its
scores are less noisy than the single-fold out-of-fold scores the map was fitted on; the map can over-correct
its spread (docs/evaluation.md, "Operating point and final model").

**Decision curves.** Net benefit with a percentile band from the same paired resamples, and net interventions
avoided per 100 patients, 100·(NB_model − NB_all)·(1 − p_t)/p_t (Vickers et al., BMJ 2016 / Diagn Progn Res
2019): LGE scans a clinician using the model avoids at no loss of net benefit over scanning everyone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from cinescar.evaluation.bootstrap import percentile_interval
from cinescar.evaluation.calibration import EPS, _logit, overlap_count
from cinescar.screening_rule import called_positive

MIN_PER_CLASS_SPLINE = 10
"""Fewer LGE+ or LGE− patients than this: the curve is the linear logistic fit, not the 3-knot spline."""
KNOT_QUANTILES = (0.10, 0.50, 0.90)
GRID_POINTS = 41
CURVE_COLUMNS = ["prob", "observed", "observed_low", "observed_high", "curve"]


def rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis [1, x, s(x)] for 3 knots (linear beyond the outer knots), scaled by
    (t3 − t1)² as Harrell does so the columns are of comparable size."""
    t1, t2, t3 = knots
    pos3 = lambda v: np.maximum(v, 0.0) ** 3  # noqa: E731
    s = (pos3(x - t1) - pos3(x - t2) * (t3 - t1) / (t3 - t2) + pos3(x - t3) * (t2 - t1) / (t3 - t2)) / (t3 - t1) ** 2
    return np.stack([np.ones_like(x), x, s], axis=-1)


def batched_logistic(X: np.ndarray, y: np.ndarray, iters: int = 50, tol: float = 1e-9) -> np.ndarray:
    """Unpenalised logistic fits by Newton–Raphson for a batch: X (B, N, k), y (B, N) → β (B, k); NaN rows where
    the fit does not converge (separation in that resample). A 1e-8 ridge only keeps the solves defined."""
    B, _, k = X.shape
    beta = np.zeros((B, k))
    done = np.zeros(B, dtype=bool)
    for _ in range(iters):
        eta = np.einsum("bnk,bk->bn", X, beta)
        mu = expit(eta)
        w = mu * (1.0 - mu)
        H = np.einsum("bnk,bn,bnj->bkj", X, w, X) + 1e-8 * np.eye(k)
        g = np.einsum("bnk,bn->bk", X, y - mu)
        step = np.linalg.solve(H, g[..., None])[..., 0]
        beta = beta + np.where(done[:, None], 0.0, step)
        done |= np.abs(step).max(axis=1) < tol
        if done.all():
            break
    beta[~done | (np.abs(beta).max(axis=1) > 50)] = np.nan  # diverging: (quasi-)separation
    return beta


def flexible_calibration(y_true: np.ndarray, prob: np.ndarray, idx: np.ndarray | None,
                         level: float = 0.95) -> tuple[pd.DataFrame, str]:  # fmt: skip
    """(curve on a probability grid with its bootstrap band, the curve's kind or why there is none).

    `idx`: (n_boot, N) stratified resample indices (bootstrap.stratified_resamples), or None for no band.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    empty = pd.DataFrame(columns=CURVE_COLUMNS)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    x = _logit(p)
    if min(n_pos, n_neg) < 2 or np.ptp(x) == 0:
        return empty, "none (fewer than 2 patients in a class, or one probability for all)"
    if overlap_count(y, x) == 0:
        return empty, "none (separation)"
    knots = np.quantile(x, KNOT_QUANTILES)
    spline = min(n_pos, n_neg) >= MIN_PER_CLASS_SPLINE and len(np.unique(knots)) == 3
    kind = "restricted cubic spline of logit(p), 3 knots" if spline else "linear logistic (too few patients for a spline)"
    design = (lambda v: rcs_basis(v, knots)) if spline else (lambda v: np.stack([np.ones_like(v), v], axis=-1))  # noqa: E731
    lo_p, hi_p = np.quantile(np.clip(p, EPS, 1 - EPS), [0.025, 0.975])
    grid = np.linspace(lo_p, hi_p, GRID_POINTS)
    G = design(_logit(grid))
    beta = batched_logistic(design(x)[None], y[None].astype(float))[0]
    if not np.isfinite(beta).all():
        return empty, "none (the fit did not converge)"
    curve = pd.DataFrame({"prob": grid, "observed": expit(G @ beta), "observed_low": np.nan, "observed_high": np.nan})
    if idx is not None and len(idx):
        betas = batched_logistic(design(x[idx]), y[idx].astype(float))
        reps = expit(betas @ G.T)  # (B, grid); NaN rows for the resamples that did not converge
        lo, hi = percentile_interval(reps, level, axis=0)
        curve["observed_low"], curve["observed_high"] = lo, hi
    return curve.assign(curve=kind)[CURVE_COLUMNS], kind


def fit_recalibration(y_dev: np.ndarray, prob_dev: np.ndarray) -> dict[str, float | str]:
    """(a, b) of logit p* = a + b·logit p on development patients, or NaNs with the reason (a = NaN: no map
    is applied; also when b ≤ 0, which would reverse the model's ranking)."""
    y = np.asarray(y_dev).astype(int)
    x = _logit(prob_dev)
    if y.min() == y.max() or np.ptp(x) == 0 or overlap_count(y, x) == 0:
        return {"a": float("nan"), "b": float("nan"), "note": "not fitted (one class, constant p, or separation)",
                "n_patients": int(y.size), "n_pos": int(y.sum())}  # fmt: skip
    a, b = batched_logistic(np.stack([np.ones_like(x), x], axis=-1)[None], y[None].astype(float))[0]
    note = "" if np.isfinite(a) else "not fitted (no convergence)"
    if np.isfinite(b) and b <= 0:  # a map that reverses the ranking would be no recalibration at all
        note, a, b = f"not applied: slope {b:.2f} ≤ 0 on development (the scores do not rank those patients)", np.nan, b
    return {"a": float(a), "b": float(b), "note": note, "n_patients": int(y.size), "n_pos": int(y.sum())}


def recalibrate(prob: np.ndarray, fit: dict) -> np.ndarray:
    """The recalibrated risks expit(a + b·logit p); the probabilities unchanged where no map was fitted."""
    if not np.isfinite(fit["a"]):
        return np.asarray(prob, dtype=float)
    return expit(fit["a"] + fit["b"] * _logit(prob))


def net_benefit_replicates(y_true: np.ndarray, prob: np.ndarray, pt: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n_boot, thresholds) net benefit of scanning p ≥ p_t on each resample (rows of idx)."""
    y = np.asarray(y_true).astype(int)[idx]
    p = np.asarray(prob, dtype=float)[idx]
    t = np.asarray(pt, dtype=float)
    scan = called_positive(p[:, None, :], t[None, :, None])  # (B, T, N)
    n = y.shape[1]
    tp = (scan & (y[:, None, :] == 1)).sum(axis=2) / n
    fp = (scan & (y[:, None, :] == 0)).sum(axis=2) / n
    return tp - fp * t / (1.0 - t)


def interventions_avoided_per_100(net_benefit: np.ndarray, treat_all: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Net LGE scans avoided per 100 patients against scanning everyone, at each threshold."""
    t = np.asarray(pt, dtype=float)
    return 100.0 * (np.asarray(net_benefit) - np.asarray(treat_all)) * (1.0 - t) / t
