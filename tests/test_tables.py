"""Cohort tables (statistics on small known inputs), reproducibility tables, feature recurrence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cinescar.errors import CinescarError
from cinescar.evaluation.tables import (
    cohort_table,
    compare_categorical,
    compare_continuous,
    feature_recurrence,
    reproducibility_table,
    study_cohort_tables,
    summarise_continuous,
    summarise_count,
)


def test_normal_groups_get_a_t_test():
    rng = np.random.default_rng(0)
    a, b = rng.normal(50, 10, 40), rng.normal(56, 12, 35)
    assert stats.shapiro(a).pvalue > 0.05 and stats.shapiro(b).pvalue > 0.05  # precondition of the fixture
    res = compare_continuous(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert res["test"].startswith("t-test")
    assert res["statistic"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)


def test_skewed_group_gets_mann_whitney():
    rng = np.random.default_rng(1)
    a, b = rng.normal(50, 10, 40), rng.exponential(10, 40) + 40
    assert stats.shapiro(b).pvalue < 0.05
    res = compare_continuous(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert res["test"] == "Mann-Whitney U"
    assert res["statistic"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)


def test_tiny_or_empty_groups():
    assert compare_continuous([1.0, 2.0], [3.0, 4.0])["test"] == "Mann-Whitney U"  # too few for Shapiro-Wilk
    assert np.isnan(compare_continuous([1.0], [3.0, 4.0, 5.0])["p"])
    assert np.isnan(compare_continuous([np.nan, np.nan], [3.0, 4.0])["p"])


def test_chi_squared_matches_scipy_and_the_hand_computation():
    # LGE+: 10 M, 20 F; LGE-: 30 M, 40 F
    a = pd.Series(["M"] * 10 + ["F"] * 20 + [None])
    b = pd.Series(["M"] * 30 + ["F"] * 40)
    res = compare_categorical(a, b)
    table = np.array([[20, 10], [40, 30]])  # columns F, M
    ref = stats.chi2_contingency(table, correction=False)
    assert res["statistic"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    expected = table.sum(1)[:, None] * table.sum(0)[None, :] / table.sum()
    assert res["statistic"] == pytest.approx(((table - expected) ** 2 / expected).sum())
    assert res["statistic"] == pytest.approx(0.7936507936507936)  # 100*(20*30-10*40)^2/(30*70*60*40)


def test_summaries_leave_missing_values_out():
    assert summarise_continuous(pd.Series([1.0, 2.0, 3.0, np.nan])) == "2.0 ± 1.0 (2.0)"
    assert summarise_count(pd.Series(["M", "F", "M", None]), "M") == "2 (67%)"


def _manifest() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    n = 40
    df = pd.DataFrame({
        "patient_id": [f"P{i:02d}" for i in range(n)], "cohort": ["internal"] * 30 + ["external"] * 10,
        "lge": [i % 2 for i in range(n)], "center": ["A", "B"] * 20, "vendor": "Siemens",
        "sex": rng.choice(["M", "F"], n), "age": rng.normal(50, 10, n), "LVM": rng.normal(150, 30, n)})
    df.loc[[0, 1, 2], "age"] = np.nan
    return df


def test_cohort_table_reports_available_counts_and_skips_absent_columns():
    df = _manifest()
    t = cohort_table(df, "All")
    assert "MWT" not in set(t["variable"])  # column absent from the manifest: no row, no error
    age = t[t["variable"] == "age"].iloc[0]
    assert age["n_all"] == 37 and age["n_pos"] + age["n_neg"] == 37
    n = t[t["variable"] == "n"].iloc[0]
    assert (n["n_all"], n["n_pos"], n["n_neg"]) == (40, 20, 20)
    sex = t[t["variable"] == "sex"]
    assert set(sex["level"]) == {"F", "M"} and sex["test"].iloc[0] == "chi-squared"
    ref = stats.chi2_contingency(pd.crosstab(df["lge"], df["sex"]).to_numpy(), correction=False)
    assert sex["p"].iloc[0] == pytest.approx(ref.pvalue)


def test_bad_labels_are_an_error():
    df = _manifest()
    df.loc[4, "lge"] = 2
    with pytest.raises(CinescarError, match="P04"):
        cohort_table(df, "All")


def test_study_tables_split_internal_and_external():
    df = _manifest()
    splits = {"test": ["P00", "P01", "P02", "P03"], "external": df["patient_id"].iloc[30:].tolist(), "folds": []}
    t1, t2 = study_cohort_tables(df, splits)
    sections = t1.drop_duplicates("section").set_index("section")["n_all"]
    assert sections.to_dict() == {"All internal patients": 30, "Development cohort": 26, "Internal testing cohort": 4}
    assert t2["section"].unique().tolist() == ["External cohort"] and t2["n_all"].iloc[0] == 10


def test_reproducibility_table_mean_and_sd():
    rows = []
    for fold, auc in enumerate([0.7, 0.8, 0.9]):
        rows.append({"model": "dl", "fold": fold, "cohort": "test", "operating_point": "validation", "cutoff": 0.3,
                     "sensitivity": 0.9, "specificity": 0.4, "ppv": 0.5, "npv": 0.8, "accuracy": 0.6, "auc": auc,
                     "spared_scar_free": 0.4, "spared_all": 0.3})
    t = reproducibility_table(pd.DataFrame(rows), "test").set_index("metric")
    assert t.loc["auc", "mean"] == pytest.approx(0.8) and t.loc["auc", "sd"] == pytest.approx(0.1)
    assert t.loc["auc", "fold_2"] == 0.9 and t.loc["auc", "operating_point"] == "validation"


def test_feature_recurrence_counts_folds_for_the_chosen_k():
    sel = pd.DataFrame({"fold": [0, 0, 1, 1, 2, 0], "k": [2, 2, 2, 2, 2, 3],
                        "feature": ["a", "dl_001", "a", "b", "a", "c"]})
    t = feature_recurrence(sel, k=2, n_folds=3)
    assert t.iloc[0].to_dict() == {"feature": "a", "kind": "radiomics", "n_folds": 3, "share": 1.0, "folds": "0;1;2"}
    assert "c" not in set(t["feature"]) and t.set_index("feature").loc["dl_001", "kind"] == "dl"
    with pytest.raises(CinescarError, match="chosen k"):
        feature_recurrence(sel)


def test_intervals_in_tables():
    from cinescar.evaluation.tables import format_interval, interval_table

    assert format_interval(0.8, 0.523, 0.951) == "0.80 (0.52–0.95)"
    assert format_interval(-0.1, -0.3, 0.12) == "−0.10 (−0.30 to 0.12)"
    assert format_interval(0.5, float("nan"), 0.9) == "0.50" and format_interval(float("nan"), 0, 1) == "–"
    df = pd.DataFrame({"model": ["dl"], "sensitivity": [0.8], "sensitivity_low": [0.5], "sensitivity_high": [0.95],
                       "avoided_per_100": [43.2], "avoided_per_100_low": [30.1], "avoided_per_100_high": [55.0]})
    t = interval_table(df, ["sensitivity", "avoided_per_100"], {"avoided_per_100": 0})
    assert list(t.columns) == ["model", "sensitivity", "avoided_per_100"]
    assert t.iloc[0].tolist() == ["dl", "0.80 (0.50–0.95)", "43 (30–55)"]
