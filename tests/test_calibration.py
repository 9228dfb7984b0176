"""Calibration numbers against hand computations (cinescar.evaluation.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from cinescar.evaluation.calibration import (calibration_intercept, calibration_slope, calibration_summary,
                                             reliability_table)


def test_brier_by_hand():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.4, 0.5])
    hand = ((0.1) ** 2 + 0.2**2 + 0.6**2 + 0.5**2) / 4  # = 0.165
    assert calibration_summary(y, p)["brier"] == pytest.approx(hand) == pytest.approx(0.165)


def test_intercept_by_hand():
    # every patient predicted 0.2 and 3 of 10 LGE+: the offset model's MLE is logit(0.3) - logit(0.2)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.full(10, 0.2)
    assert calibration_intercept(y, p) == pytest.approx(logit(0.3) - logit(0.2), abs=1e-9)
    assert np.isnan(calibration_intercept(np.zeros(4), np.full(4, 0.3)))


def test_slope_by_hand():
    # two probability levels: logit(p) = x1, x2 with observed LGE+ shares r1, r2; the two-parameter logistic
    # fit is saturated, so b = (logit r2 - logit r1) / (x2 - x1)
    p1, p2, r1, r2, n = 0.2, 0.6, 0.25, 0.5, 40
    y = np.r_[np.ones(int(r1 * n)), np.zeros(n - int(r1 * n)), np.ones(int(r2 * n)), np.zeros(n - int(r2 * n))]
    p = np.r_[np.full(n, p1), np.full(n, p2)]
    hand = (logit(r2) - logit(r1)) / (logit(p2) - logit(p1))
    slope, note = calibration_slope(y, p)
    assert note == "" and slope == pytest.approx(hand, abs=1e-5)


def test_well_calibrated_probabilities_have_slope_one_intercept_zero():
    rng = np.random.default_rng(0)
    p = expit(rng.normal(0, 1.5, 20000))
    y = (rng.random(p.size) < p).astype(int)
    s = calibration_summary(y, p)
    assert s["cal_slope"] == pytest.approx(1.0, abs=0.05) and s["cal_intercept"] == pytest.approx(0.0, abs=0.05)
    # probabilities pushed to the extremes (logit doubled) have slope ≈ 0.5
    assert calibration_slope(y, expit(2 * logit(p)))[0] == pytest.approx(0.5, abs=0.03)


def test_separation_gives_nan_with_a_reason():
    y = np.array([0, 0, 1, 1])
    slope, note = calibration_slope(y, np.array([0.1, 0.2, 0.7, 0.9]))
    assert np.isnan(slope) and note == "separation"
    assert calibration_slope(np.array([1, 1]), np.array([0.5, 0.6]))[1] == "one class"


def test_reliability_counts_and_points():
    y = np.array([0, 0, 1, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.3, 0.35, 0.55, 0.9, 1.0, 0.95])
    t = reliability_table(y, p, n_bins=5)
    # bins [0,.2) [.2,.4) [.4,.6) [.6,.8) [.8,1]: 2, 2, 1, 0, 3 patients; the empty bin is left out
    assert t["bin"].tolist() == [0, 1, 2, 4] and t["n"].tolist() == [2, 2, 1, 3]
    assert t["observed"].tolist() == pytest.approx([0.0, 0.5, 1.0, 2 / 3])
    assert t["mean_prob"].tolist() == pytest.approx([0.1, 0.325, 0.55, (0.9 + 1.0 + 0.95) / 3])
