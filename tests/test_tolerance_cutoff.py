"""The tolerance cut-off (screening.sensitivity_confidence) against the Beta law of the empirical quantile,
by simulation (cinescar.evaluation.screening.tolerance_rank, choose_cutoff)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cinescar.evaluation.screening import choose_cutoff, sensitivity_confidence, tolerance_rank


def _population_sensitivity(m: int, target: float, confidence: float | None, reps: int, seed: int) -> np.ndarray:
    """Population sensitivity P(X ≥ t) of the cut-off t each rule sets on m LGE+ (and 40 LGE−) patients
    drawn from a normal score; the LGE− patients must not move the cut-off."""
    rng = np.random.default_rng(seed)
    out = np.empty(reps)
    for r in range(reps):
        pos, neg = rng.normal(1.0, 1.0, m), rng.normal(0.0, 1.0, 40)
        y = np.r_[np.ones(m, int), np.zeros(40, int)]
        t = choose_cutoff(y, np.r_[pos, neg], target, confidence)
        out[r] = stats.norm.sf(t, loc=1.0)
    return out


def test_point_rule_follows_beta_law_and_holds_with_probability_one_half():
    m, target = 57, 0.90
    j = math.ceil(target * m)
    s = _population_sensitivity(m, target, None, 4000, 0)
    law = stats.beta(j, m - j + 1)
    assert s.mean() == pytest.approx(law.mean(), abs=0.003)  # 52/58 = 0.897
    assert np.mean(s >= target) == pytest.approx(law.sf(target), abs=0.025)  # 0.51
    assert sensitivity_confidence(m, j, target) == pytest.approx(0.51, abs=0.01)
    assert stats.kstest(s, law.cdf).pvalue > 0.001  # the whole distribution, not just two moments


@pytest.mark.parametrize("m,confidence", [(15, 0.8), (57, 0.8), (57, 0.95), (120, 0.9)])
def test_tolerance_rule_reaches_the_target_with_the_stated_confidence(m, confidence):
    target = 0.90
    j = tolerance_rank(m, target, confidence)
    s = _population_sensitivity(m, target, confidence, 3000, m)
    reached = np.mean(s >= target)
    law = sensitivity_confidence(m, j, target)
    if law >= confidence:  # reachable with m LGE+: at least the confidence, and the rank is the smallest that does
        assert reached >= confidence - 0.02
        assert reached == pytest.approx(law, abs=0.025)
        assert j == math.ceil(target * m) or sensitivity_confidence(m, j - 1, target) < confidence
    else:  # too few LGE+: the lowest LGE+ probability, and the confidence it does reach is reported
        assert j == m and reached == pytest.approx(law, abs=0.025)


def test_tolerance_cutoff_is_never_above_the_point_cutoff():
    rng = np.random.default_rng(9)
    for _ in range(50):
        y = rng.integers(0, 2, 60)
        y[0] = 1
        p = rng.random(60)
        assert choose_cutoff(y, p, 0.9, 0.8) <= choose_cutoff(y, p, 0.9)
    with pytest.raises(Exception, match="sensitivity_confidence"):
        tolerance_rank(10, 0.9, 1.0)


def test_report_sentence_says_when_the_confidence_is_out_of_reach():
    import pandas as pd

    from cinescar.evaluation.report import cutoff_sentence

    ops = pd.DataFrame({"confidence_reached": [sensitivity_confidence(5, 5, 0.9)] * 2})  # 1 − 0.9⁵ = 0.41
    s = cutoff_sentence({"screening": {"sensitivity_confidence": 0.8}}, 0.9, ops)
    assert "confidence 0.8" in s and "(Beta law): 0.41" in s and "below the configured 0.8" in s
    point = cutoff_sentence({"screening": {}}, 0.9, pd.DataFrame({"confidence_reached": [0.518, 0.518]}))
    assert "about one half" in point and "(Beta law): 0.52" in point and "below the configured" not in point
