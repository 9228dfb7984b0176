"""Patient aggregation, the sensitivity cut-off rule and the metrics at the operating point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinescar.errors import CohortError
from cinescar.evaluation.metrics import confusion_counts, roc_with_band, screening_metrics
from cinescar.evaluation.screening import choose_cutoff, patient_probabilities, screening_table


def _sens(y, p, t):
    y, p = np.asarray(y, bool), np.asarray(p)
    return (p[y] >= t).mean()


def test_cutoff_is_the_highest_threshold_reaching_the_target():
    y = np.r_[np.ones(10, int), np.zeros(5, int)]
    p = np.r_[np.linspace(0.95, 0.05, 10), [0.9, 0.5, 0.3, 0.2, 0.01]]
    t = choose_cutoff(y, p, 0.90)
    assert t == pytest.approx(0.15)  # 9th largest positive: 0.95 - 8 * 0.1
    assert _sens(y, p, t) >= 0.90
    assert _sens(y, p, np.nextafter(t, 1)) < 0.90  # anything higher misses the target


def test_target_times_n_is_not_rounded_up_by_float_error():
    # 0.9 * 10 = 9.000000000000002 in floating point: 9 positives are enough, not 10
    y = np.ones(10, int)
    p = np.arange(10, 0, -1) / 10.0
    assert choose_cutoff(y, p, 0.9) == pytest.approx(0.2)


def test_ties_at_the_cutoff_are_positive():
    y = np.array([1, 1, 1, 1, 0, 0])
    p = np.array([0.5, 0.5, 0.5, 0.2, 0.5, 0.1])
    t = choose_cutoff(y, p, 0.75)
    assert t == 0.5
    c = confusion_counts(y, p, t)
    assert c == {"tp": 3, "fp": 1, "tn": 1, "fn": 1}  # the negative at exactly 0.5 is called positive


def test_cutoff_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 40))
        y = rng.integers(0, 2, n)
        y[0] = 1
        p = np.round(rng.random(n), 1)  # many ties
        target = float(rng.choice([0.5, 0.8, 0.9, 0.95, 1.0]))
        candidates = [t for t in np.unique(p) if _sens(y, p, t) >= target - 1e-12]
        assert choose_cutoff(y, p, target) == max(candidates)


def test_patient_probability_is_the_maximum_over_its_images():
    pred = pd.DataFrame({
        "image_id": ["A_1", "A_2", "A_3", "B_1", "B_2"], "patient_id": ["A", "A", "A", "B", "B"],
        "fold": 0, "split": "test", "dev_selected": True, "lge": [1, 1, 1, 0, 0], "prob": [0.2, 0.7, 0.1, 0.4, 0.3]})
    pat = patient_probabilities(pred).set_index("patient_id")
    assert pat.loc["A", "prob"] == 0.7 and pat.loc["B", "prob"] == 0.4
    assert pat.loc["A", "n_images"] == 3 and pat.loc["A", "lge"] == 1


def test_inconsistent_labels_and_bad_probabilities_name_the_patient():
    pred = pd.DataFrame({"image_id": ["A_1", "A_2"], "patient_id": ["A", "A"], "fold": 0, "split": "test",
                         "dev_selected": True, "lge": [1, 0], "prob": [0.2, 0.7]})
    with pytest.raises(CohortError, match="patient A.*different LGE labels"):
        patient_probabilities(pred, source="x.parquet")
    pred["lge"] = 1
    pred.loc[1, "prob"] = np.nan
    with pytest.raises(CohortError, match="patient A, file x.parquet"):
        patient_probabilities(pred, source="x.parquet")


def test_metrics_at_the_operating_point():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05])
    m = screening_metrics(y, p, 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 3, 1)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(3 / 4)
    assert m["ppv"] == pytest.approx(2 / 3) and m["npv"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["spared_scar_free"] == m["specificity"]
    assert m["spared_all"] == pytest.approx(4 / 7)  # TN + FN: everyone called negative skips gadolinium
    assert m["auc"] == pytest.approx(10 / 12)  # exact, not a 100-threshold trapezoid
    nobody = screening_metrics(y, p, 0.99)
    assert np.isnan(nobody["ppv"]) and nobody["spared_all"] == 1.0


def _patients(fold_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for split, n in (("val", 40), ("test", 30), ("external", 20)):
        for i in range(n):
            lge = int(i % 2)
            rows.append({"fold": 0, "split": split, "patient_id": f"{split}{i}", "lge": lge,
                         "prob": float(np.clip(rng.normal(0.4 + 0.25 * lge + fold_shift, 0.2), 0, 1)),
                         "n_images": 3})
    return pd.DataFrame(rows)


def test_validation_cutoff_is_applied_unchanged_to_the_test_cohorts():
    pat = _patients()
    table = screening_table(pat, 0.9)
    assert set(table["operating_point"]) == {"validation"}
    val = pat[pat["split"] == "val"]
    expected = choose_cutoff(val["lge"], val["prob"], 0.9)
    assert (table["cutoff"] == expected).all()
    assert table.loc[table["cohort"] == "val", "sensitivity"].iloc[0] >= 0.9
    test = pat[pat["split"] == "test"]
    reached = (test.loc[test["lge"] == 1, "prob"] >= expected).mean()
    assert table.loc[table["cohort"] == "test", "sensitivity"].iloc[0] == pytest.approx(reached)


def test_optimistic_cutoff_only_on_request_and_labelled():
    table = screening_table(_patients(), 0.9, cutoff_on_test=True)
    opt = table[table["operating_point"] == "optimistic"]
    assert set(opt["cohort"]) == {"test", "external"}
    assert (opt["sensitivity"] >= 0.9).all()


def test_roc_band_brackets_the_curve():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    s = rng.normal(y, 1.0)
    band = roc_with_band(y, s, n_boot=200, seed=0)
    assert band["fpr"].iloc[0] == 0 and band["fpr"].iloc[-1] == 1 and band["tpr"].iloc[-1] == 1
    assert (band["tpr_low"] <= band["tpr"] + 1e-12).all() and (band["tpr"] <= band["tpr_high"] + 1e-12).all()
    assert band["tpr"].is_monotonic_increasing


def test_auc_interval_contains_the_exact_auc_under_perfect_separation():
    y = np.r_[np.ones(7, int), np.zeros(9, int)]
    p = np.r_[np.linspace(0.6, 0.9, 7), np.linspace(0.1, 0.5, 9)]
    m = screening_metrics(y, p, 0.6)
    assert m["auc"] == 1.0 and m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"] == 1.0
