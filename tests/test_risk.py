"""Calibration read as risk (cinescar.evaluation.risk): spline curve and band, recalibration, decision bands."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from cinescar.evaluation.bootstrap import stratified_resamples
from cinescar.evaluation.calibration import calibration_summary
from cinescar.evaluation.decision import net_benefit, treat_all
from cinescar.evaluation.risk import (batched_logistic, fit_recalibration, flexible_calibration,
                                      interventions_avoided_per_100, net_benefit_replicates, rcs_basis, recalibrate)


def test_newton_fit_equals_scikit_learn_unpenalised():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = (rng.random(300) < expit(-0.5 + 1.3 * x + 0.4 * x**2)).astype(int)
    knots = np.quantile(x, [0.1, 0.5, 0.9])
    X = rcs_basis(x, knots)
    ours = batched_logistic(X[None], y[None].astype(float))[0]
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=5000).fit(X[:, 1:], y)
    assert ours == pytest.approx(np.r_[ref.intercept_, ref.coef_[0]], abs=1e-4)


def test_spline_curve_of_calibrated_risks_follows_the_diagonal_and_its_band_covers_it():
    rng = np.random.default_rng(2)
    p = expit(rng.normal(-0.5, 1.2, 400))
    y = (rng.random(p.size) < p).astype(int)
    curve, kind = flexible_calibration(y, p, stratified_resamples(y, 200, 1))
    assert kind.startswith("restricted cubic spline")
    assert np.abs(curve["observed"] - curve["prob"]).max() < 0.1
    assert ((curve["observed_low"] <= curve["prob"]) & (curve["prob"] <= curve["observed_high"])).mean() > 0.9
    # probabilities too high by a constant on the logit scale: the curve lies below the diagonal
    high = expit(logit(p) + 1.0)
    c2, _ = flexible_calibration(y, high, None)
    assert (c2["observed"] < c2["prob"]).mean() > 0.9


def test_curve_falls_back_or_stops_when_the_data_cannot_carry_it():
    y = np.array([0, 1, 0, 1, 0, 0, 1, 0])
    p = np.array([0.1, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.2])
    assert flexible_calibration(y, p, None)[1].startswith("linear")
    assert flexible_calibration(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.9]), None)[1] == "none (separation)"


def test_recalibration_on_development_repairs_an_offset_on_new_patients():
    rng = np.random.default_rng(4)

    def cohort(n):
        risk = expit(rng.normal(-1.0, 1.0, n))
        return (rng.random(n) < risk).astype(int), expit(logit(risk) + 1.2)  # scores too high (balanced weights)

    y_dev, s_dev = cohort(3000)
    y_new, s_new = cohort(3000)
    fit = fit_recalibration(y_dev, s_dev)
    assert fit["a"] == pytest.approx(-1.2, abs=0.15) and fit["b"] == pytest.approx(1.0, abs=0.1)
    before = calibration_summary(y_new, s_new)["cal_intercept"]
    after = calibration_summary(y_new, recalibrate(s_new, fit))["cal_intercept"]
    assert before < -1.0 and abs(after) < 0.15


def test_net_benefit_replicates_and_interventions_avoided_by_hand():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 30)
    p = rng.random(30)
    pt = np.array([0.1, 0.2, 0.3])
    identity = np.vstack([np.arange(30)] * 2)
    reps = net_benefit_replicates(y, p, pt, identity)
    assert reps == pytest.approx(np.vstack([net_benefit(y, p, pt)] * 2))
    # at p_t = 0.2, NB_model − NB_all = 0.05 means 100·0.05·0.8/0.2 = 20 net scans avoided per 100
    assert interventions_avoided_per_100(np.array([0.30]), np.array([0.25]), np.array([0.2])) == pytest.approx([20.0])
    assert interventions_avoided_per_100(net_benefit(y, p, pt), treat_all(y, pt), pt).shape == (3,)


def test_a_reversing_map_is_not_applied():
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 0, 1])
    p = np.array([0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.35, 0.3, 0.5, 0.65])  # scores ranked mostly the wrong way
    fit = fit_recalibration(y, p)
    assert np.isnan(fit["a"]) and fit["note"].startswith("not applied: slope")
    assert recalibrate(p, fit) == pytest.approx(p)
