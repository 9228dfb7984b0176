"""The stratified patient-level bootstrap (cinescar.evaluation.bootstrap) and the exact AUC it relies on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from cinescar.evaluation.bootstrap import (auc_difference_interval, auc_replicates, group_seed, percentile_interval,
                                           screening_intervals, screening_replicates, stratified_resamples)
from cinescar.evaluation.metrics import auc_or_nan, screening_metrics


def _cohort(n_pos=12, n_neg=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    rng.shuffle(y)
    p = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 2)  # rounded: ties between patients
    return y, p


def test_resamples_keep_each_class_and_are_seeded():
    y, _ = _cohort()
    idx = stratified_resamples(y, 200, seed=3)
    assert idx.shape == (200, y.size)
    assert (y[idx[:, :12]] == 1).all() and (y[idx[:, 12:]] == 0).all()  # LGE+ first, counts kept
    assert np.array_equal(idx, stratified_resamples(y, 200, seed=3))
    assert not np.array_equal(idx, stratified_resamples(y, 200, seed=4))
    assert group_seed(1, "fold 0", "test") == group_seed(1, "fold 0", "test") != group_seed(1, "fold 1", "test")


def test_auc_matches_scikit_learn_with_ties():
    y, p = _cohort()
    assert auc_or_nan(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    idx = stratified_resamples(y, 25, seed=1)
    reps = auc_replicates(y, p, idx)
    assert reps == pytest.approx([roc_auc_score(y[i], p[i]) for i in idx], abs=1e-12)
    assert np.isnan(auc_or_nan(np.zeros(5), np.arange(5)))


def test_identity_resample_reproduces_the_point_metrics():
    y, p = _cohort()
    reps = screening_replicates(y, p, 0.4, np.arange(y.size)[None, :])
    m = screening_metrics(y, p, 0.4)
    for k in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "spared_all"):
        assert reps[k][0] == pytest.approx(m[k])
    assert reps["avoided_per_100"][0] == pytest.approx(100 * (m["tn"] + m["fn"]) / m["n_patients"])
    assert reps["missed_per_100"][0] == pytest.approx(100 * m["fn"] / m["n_patients"])


def test_interval_agrees_with_scipy_bootstrap():
    """Same percentile interval as scipy.stats.bootstrap with the two classes as independent samples."""
    y, p = _cohort(n_pos=20, n_neg=40)
    ours = screening_intervals(y, p, 0.45, stratified_resamples(y, 4000, seed=0))
    pos, neg = p[y == 1], p[y == 0]
    ref = stats.bootstrap((np.arange(pos.size), np.arange(neg.size)),
                          lambda i, j, axis=-1: (neg[j] < 0.45).mean(axis=axis), n_resamples=4000,
                          vectorized=True, paired=False, method="percentile", rng=1).confidence_interval
    assert ours["specificity_low"] == pytest.approx(ref.low, abs=1.5 / neg.size)
    assert ours["specificity_high"] == pytest.approx(ref.high, abs=1.5 / neg.size)
    assert ours["specificity_low"] <= screening_metrics(y, p, 0.45)["specificity"] <= ours["specificity_high"]


def test_undefined_replicates_are_left_out():
    # nobody called positive in most replicates: PPV undefined there, but defined in the rest
    y = np.array([1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.1, 0.1, 0.1, 0.1, 0.95])
    out = screening_intervals(y, p, 0.92, stratified_resamples(y, 500, seed=0))
    assert out["ppv_low"] == 0.0 and out["ppv_high"] == 0.0  # TP never possible: p(LGE+) < cut-off
    lo, hi = percentile_interval(np.full(10, np.nan))
    assert np.isnan(lo) and np.isnan(hi)


def test_auc_difference_is_paired():
    y, p = _cohort(n_pos=25, n_neg=25)
    idx = stratified_resamples(y, 500, seed=0)
    lo, hi = auc_difference_interval(y, p, p, idx)
    assert lo == hi == 0.0  # the same model against itself: zero in every paired replicate
    lo, hi = auc_difference_interval(y, p, -p, idx)
    d = 2 * roc_auc_score(y, p) - 1
    assert lo < d < hi and lo > 0


@pytest.mark.slow
def test_interval_coverage_near_nominal():
    """On simulated cohorts with a known truth, the 95 % interval of sensitivity, specificity and the AUC
    difference of two equal models covers the truth close to 95 % of the time (kept small: 300 cohorts × 400
    replicates; benchmarks/bootstrap_coverage.py runs the larger study)."""
    rng = np.random.default_rng(12)
    n_pos, n_neg, cut, hits = 40, 80, 0.0, {"sensitivity": 0, "specificity": 0, "diff": 0}
    true_sens, true_spec = stats.norm.sf(cut - 1.0), stats.norm.cdf(cut)  # scores N(1,1) for LGE+, N(0,1) LGE-
    n_sim = 300
    for s in range(n_sim):
        y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
        a = rng.normal(y * 1.0, 1.0)
        b = rng.normal(y * 1.0, 1.0)  # a second model, as good as the first: true AUC difference 0
        idx = stratified_resamples(y, 400, seed=s)
        iv = screening_intervals(y, a, cut, idx)
        hits["sensitivity"] += iv["sensitivity_low"] <= true_sens <= iv["sensitivity_high"]
        hits["specificity"] += iv["specificity_low"] <= true_spec <= iv["specificity_high"]
        lo, hi = auc_difference_interval(y, a, b, idx)
        hits["diff"] += lo <= 0.0 <= hi
    for k, h in hits.items():
        assert 0.90 <= h / n_sim <= 0.99, (k, h / n_sim)


def test_wilson_interval_by_hand():
    from cinescar.evaluation.metrics import wilson_intervals

    # 5 of 5 LGE+ caught: Wilson low = (k + z²/2)/(n + z²) − z/(n + z²)·sqrt(z²/4), high = 1
    z = stats.norm.ppf(0.975)
    low = (5 + z**2 / 2) / (5 + z**2) - z / (5 + z**2) * np.sqrt(z**2 / 4)
    w = wilson_intervals({"tp": 5, "fn": 0, "tn": 6, "fp": 4})
    assert w["sensitivity_low"] == pytest.approx(low) == pytest.approx(0.5655, abs=1e-4)
    assert w["sensitivity_high"] == pytest.approx(1.0)
    # LGE scans avoided: (TN + FN)/N = 6/15 per 100
    assert w["avoided_per_100_low"] < 40.0 < w["avoided_per_100_high"]
