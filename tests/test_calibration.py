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


@pytest.mark.parametrize("p", [[0.2, 0.1, 0.9], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], [0.2, 0.2, 0.2, 0.7],
                               [60 / 300, 0.4, 0.40000001, 0.39999999, 1.0]])
def test_reliability_matches_scikit_learn_on_bin_edges(p):
    # a probability exactly on an edge belongs to the bin below it (scikit-learn: searchsorted side="left");
    # side="right" mislabelled these counts or crashed ("All arrays must be of the same length")
    from sklearn.calibration import calibration_curve

    p = np.asarray(p)
    y = (np.arange(p.size) % 2).astype(int)
    t = reliability_table(y, p, n_bins=5)
    observed, predicted = calibration_curve(y, p, n_bins=5, strategy="uniform")
    assert t["observed"].tolist() == pytest.approx(observed.tolist())
    assert t["mean_prob"].tolist() == pytest.approx(predicted.tolist())
    assert t["n"].sum() == p.size
    # every probability lies in its bin: (low, high], the first bin also holding 0
    for _, row in t.iterrows():
        members = p[(p > row["bin_low"]) | ((row["bin"] == 0) & (p == 0))]
        members = members[members <= row["bin_high"] + 1e-15]
        assert members.size == row["n"]


def test_reliability_edge_value_counts_by_hand():
    t = reliability_table(np.array([1, 0, 1]), np.array([0.2, 0.1, 0.9]), n_bins=5)
    # 0.2 sits on the edge between bins 0 and 1: it joins 0.1 in bin 0 ([0, 0.2]); 0.9 is in bin 4
    assert t["bin"].tolist() == [0, 4] and t["n"].tolist() == [2, 1]
    assert t["observed"].tolist() == pytest.approx([0.5, 1.0])
    assert t["mean_prob"].tolist() == pytest.approx([0.15, 0.9])


def test_quasi_separation_and_near_separation_are_flagged_not_printed():
    y = np.array([0, 0, 1, 1, 1])
    # quasi-complete: the classes meet at one tied value (0.5); the MLE slope is infinite
    slope, note = calibration_slope(y, np.array([0.1, 0.5, 0.5, 0.7, 0.9]))
    assert np.isnan(slope) and note == "separation"
    # one discordant pair at the boundary: the finite MLE is set by those two patients alone
    y = np.array([0, 0, 0, 1, 1, 1])
    slope, note = calibration_slope(y, np.array([0.1, 0.2, 0.6, 0.5, 0.9, 0.95]))
    assert np.isnan(slope) and note.startswith("near separation (2 patients")
    # a real overlap: a finite slope, no note
    slope, note = calibration_slope(np.array([0, 1, 0, 1, 0, 1, 0, 1]),
                                    np.array([0.1, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.9]))
    assert np.isfinite(slope) and note == ""


def test_clipped_probabilities_are_counted_and_noted():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 200)
    y = (rng.random(200) < p).astype(int)
    s = calibration_summary(y, p)
    assert s["n_clipped"] == 0 and s["slope_note"] == ""
    p[:7] = np.where(y[:7] == 1, 1.0, 0.0)  # a random forest's exact 0 and 1
    s = calibration_summary(y, p)
    assert s["n_clipped"] == 7 and "7 probabilities clipped" in s["slope_note"] and np.isfinite(s["cal_slope"])
