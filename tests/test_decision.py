"""Decision curves and per-100 utility against hand computations (cinescar.evaluation.decision)."""

from __future__ import annotations

import numpy as np
import pytest

from cinescar.errors import CinescarError
from cinescar.evaluation.decision import decision_curve, net_benefit, per_100, thresholds, treat_all


Y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.6, 0.15, 0.5, 0.3, 0.25, 0.2, 0.1, 0.05, 0.2])


def test_net_benefit_by_hand():
    # p_t = 0.2 → scan p ≥ 0.2: LGE+ 0.9, 0.6 (TP = 2; 0.15 missed); LGE− 0.5, 0.3, 0.25, 0.2, 0.2 (FP = 5)
    # NB = 2/10 − 5/10 · 0.2/0.8 = 0.2 − 0.125 = 0.075
    assert net_benefit(Y, P, [0.2])[0] == pytest.approx(0.075)
    # p_t = 0.55 → TP = 2 (0.9, 0.6), FP = 0: NB = 0.2
    assert net_benefit(Y, P, [0.55])[0] == pytest.approx(0.2)
    # LGE for all at p_t = 0.2: 0.3 − 0.7 · 0.25 = 0.125
    assert treat_all(Y, [0.2])[0] == pytest.approx(0.125)


def test_curve_columns_and_treat_none():
    t = thresholds(0.1, 0.5, 0.1)
    assert t.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    dc = decision_curve(Y, P, t)
    assert (dc["treat_none"] == 0).all()
    assert dc.loc[dc["threshold"] == 0.2, "scanned_per_100"].item() == pytest.approx(70.0)  # 7 of 10 scanned
    with pytest.raises(CinescarError):
        thresholds(0.0, 0.5, 0.1)


def test_per_100_by_hand():
    # cut-off 0.2: called negative 0.15 (LGE+), 0.1, 0.05 → 3 avoided per 10, 1 scar missed per 10
    assert per_100(Y, P, 0.2) == pytest.approx({"avoided_per_100": 30.0, "missed_per_100": 10.0})
