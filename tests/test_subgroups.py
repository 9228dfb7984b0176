"""Subgroup metrics per centre and vendor (cinescar.evaluation.subgroups)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinescar.evaluation.metrics import screening_metrics
from cinescar.evaluation.subgroups import subgroup_metrics


def test_subgroups_with_and_without_both_classes():
    patients = pd.DataFrame({"patient_id": [f"P{i}" for i in range(10)],
                             "lge": [1, 0, 1, 0, 0, 1, 1, 0, 0, 0],
                             "prob": [0.9, 0.2, 0.6, 0.7, 0.1, 0.8, 0.4, 0.3, 0.2, 0.5]})
    attrs = pd.DataFrame({"patient_id": patients["patient_id"],
                          "center": ["A"] * 6 + ["B"] * 4, "vendor": ["GE"] * 9 + ["Philips"]})
    t = subgroup_metrics(patients, attrs, cutoff=0.5, n_boot=200, seed=0).set_index(["variable", "level"])
    assert t.loc[("center", "A"), "n_patients"] == 6 and t.loc[("center", "B"), "n_pos"] == 1
    a = patients.iloc[:6]
    m = screening_metrics(a["lge"].to_numpy(), a["prob"].to_numpy(), 0.5)
    assert t.loc[("center", "A"), "sensitivity"] == pytest.approx(m["sensitivity"])
    assert t.loc[("center", "A"), "auc"] == pytest.approx(m["auc"])
    assert t.loc[("center", "A"), "specificity_low"] <= m["specificity"] <= t.loc[("center", "A"), "specificity_high"]
    one = t.loc[("vendor", "Philips")]  # one LGE− patient only: n, no metrics
    assert one["n_patients"] == 1 and one["note"] == "one class only" and np.isnan(one["auc"])
