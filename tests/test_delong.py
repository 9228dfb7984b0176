"""DeLong's test (fast midrank algorithm) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from cinescar.errors import CinescarError
from cinescar.evaluation.delong import delong_ci, delong_test, delong_variance, fast_delong, pairwise_delong


def _data(n_pos: int = 60, n_neg: int = 90, shift: float = 1.0, seed: int = 0, decimals: int | None = 1):
    """Scores with many ties (rounded) so the midrank handling is exercised."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    s = rng.normal(shift * y, 1.0)
    return y, (np.round(s, decimals) if decimals is not None else s)


def _naive_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong 1988 by its definition: O(m n) kernel psi, structural components V10/V01."""
    y = y.astype(bool)
    comps10, comps01 = [], []
    for s in (a, b):
        x, z = s[y][:, None], s[~y][None, :]
        psi = (x > z) + 0.5 * (x == z)
        comps10.append(psi.mean(axis=1))
        comps01.append(psi.mean(axis=0))
    v10, v01 = np.array(comps10), np.array(comps01)
    aucs = v10.mean(axis=1)
    return aucs, np.cov(v10) / y.sum() + np.cov(v01) / (~y).sum()


def test_auc_equals_mann_whitney_u_and_sklearn():
    y, s = _data()
    auc, _ = delong_variance(y, s)
    u = stats.mannwhitneyu(s[y == 1], s[y == 0], alternative="two-sided").statistic
    assert auc == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_fast_algorithm_matches_the_definition():
    y, a = _data(seed=1)
    _, b = _data(seed=2, shift=0.5)
    aucs, cov = fast_delong(y, np.vstack([a, b]))
    aucs_ref, cov_ref = _naive_delong(y, a, b)
    np.testing.assert_allclose(aucs, aucs_ref, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, atol=1e-12)


def test_order_of_patients_does_not_matter():
    y, s = _data(seed=3)
    perm = np.random.default_rng(0).permutation(len(y))
    assert delong_variance(y, s) == pytest.approx(delong_variance(y[perm], s[perm]), abs=1e-14)


def test_variance_agrees_with_bootstrap():
    y, s = _data(n_pos=80, n_neg=120, seed=4, decimals=None)
    _, var = delong_variance(y, s)
    rng = np.random.default_rng(5)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    # stratified bootstrap; each replicate's AUC as Mann-Whitney U / (m n), vectorised over replicates
    xs = s[rng.choice(pos, (2000, pos.size))]
    zs = s[rng.choice(neg, (2000, neg.size))]
    boots = stats.mannwhitneyu(xs, zs, axis=1).statistic / (pos.size * neg.size)
    assert var == pytest.approx(np.var(boots, ddof=1), rel=0.15)


def test_identical_predictions_give_p_one():
    y, s = _data(seed=6)
    res = delong_test(y, s, s.copy())
    assert res.p == 1.0 and res.diff == 0.0
    # a monotone transform ranks the patients identically: same AUC, p = 1
    assert delong_test(y, s, np.exp(s)).p == pytest.approx(1.0)


def test_strongly_different_models_give_small_p():
    y, good = _data(n_pos=100, n_neg=100, shift=2.5, seed=7, decimals=None)
    noise = np.random.default_rng(8).normal(size=y.size)
    res = delong_test(y, good, noise)
    assert res.auc_a > 0.9 and 0.35 < res.auc_b < 0.65
    assert res.p < 1e-6
    swapped = delong_test(y, noise, good)
    assert swapped.p == pytest.approx(res.p) and swapped.z == pytest.approx(-res.z)


def test_ci_contains_auc_and_is_clipped():
    y, s = _data(seed=9)
    auc, lo, hi = delong_ci(y, s)
    assert lo < auc < hi
    _, var = delong_variance(y, s)
    assert hi - auc == pytest.approx(1.959964 * np.sqrt(var), rel=1e-5)
    y2 = np.r_[np.ones(5, int), np.zeros(5, int)]
    auc2, lo2, hi2 = delong_ci(y2, np.r_[np.arange(5) + 10.0, np.arange(5)])  # perfect separation
    assert auc2 == 1.0 and hi2 == 1.0 and lo2 <= 1.0


def test_too_few_patients_of_a_class_is_a_clear_error():
    with pytest.raises(CinescarError, match="at least 2 positive"):
        delong_variance(np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3]))


def test_pairwise_table_has_every_pair():
    y, a = _data(seed=10)
    _, b = _data(seed=11)
    _, c = _data(seed=12)
    t = pairwise_delong(y, {"radiomics": a, "dl": b, "fusion": c})
    assert list(zip(t["model_a"], t["model_b"])) == [("radiomics", "dl"), ("radiomics", "fusion"), ("dl", "fusion")]
    assert t["p"].between(0, 1).all()
