"""TRIPOD+AI counts and checks (cinescar.evaluation.tripod)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinescar.evaluation.subgroups import subgroup_attributes
from cinescar.evaluation.tripod import (hanley_mcneil_se, images_vs_score, missing_values, sample_size_table,
                                        wilson_halfwidth)


def test_precision_statements_by_hand():
    # Wilson at p = 0.9, n = 20: centre (18 + 1.92)/(20 + 3.84), half-width 1.96·sqrt(.09/20 + 1.96²/1600)/(1 + 3.84/20)
    z = 1.959963984540054
    hand = z * np.sqrt(0.9 * 0.1 / 20 + z**2 / 1600) / (1 + z**2 / 20)
    assert wilson_halfwidth(0.9, 20) == pytest.approx(hand)
    # Hanley & McNeil at AUC 0.75, 10 and 10: Q1 = 0.6, Q2 = 1.125/1.75, var = (0.1875 + 9·0.0375 + 9·(Q2 − 0.5625))/100
    q2 = 1.125 / 1.75
    assert hanley_mcneil_se(0.75, 10, 10) == pytest.approx(np.sqrt((0.1875 + 9 * 0.0375 + 9 * (q2 - 0.5625)) / 100))
    assert hanley_mcneil_se(0.75, 10, 10) == pytest.approx(0.1117, abs=5e-4)
    t = sample_size_table([{"role": "external", "cohort": "external", "n_patients": 20, "n_pos": 7}], 0.9)
    assert t["n_neg"].tolist() == [13] and t["sensitivity_halfwidth"].iloc[0] == pytest.approx(wilson_halfwidth(0.9, 7))


def test_missing_values_count_before_imputation():
    man = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "cohort": ["internal", "internal", "internal", "ext"],
                        "age": [40, np.nan, 60, np.nan], "LVM": [100, 120, np.nan, 90]})
    mv = missing_values(man, ["age", "LVM", "MWT"]).set_index(["variable", "cohort"])
    assert mv.loc[("age", "internal"), "n_missing"] == 1 and mv.loc[("age", "ext"), "n_missing"] == 1
    assert mv.loc[("LVM", "internal"), "share_missing"] == pytest.approx(1 / 3)
    assert mv.loc[("MWT", "internal"), "n_missing"] == 3 and not mv.loc[("MWT", "internal"), "in_manifest"]


def test_images_vs_score_sees_a_score_that_counts_slices():
    rng = np.random.default_rng(0)
    n = 60
    n_img = rng.integers(8, 20, n)
    # maximum over images of a score with no information: grows with the number of images
    prob = np.array([rng.random(k).max() for k in n_img])
    df = pd.DataFrame({"fold": 0, "split": "test", "patient_id": [f"p{i}" for i in range(n)], "lge": 0,
                       "prob": prob, "n_images": n_img})
    out = images_vs_score({"radiomics": df}, {"radiomics": {"fold": 0}})
    row = out[out["cohort"] == "test"].iloc[0]
    assert row["n_neg"] == n and row["spearman_rho"] > 0.3 and row["p"] < 0.05


def test_subgroup_attributes_add_sex_and_a_fixed_age_split():
    man = pd.DataFrame({"patient_id": [1, 2, 3], "center": ["A", "B", "A"], "sex": ["F", "M", "F"],
                        "age": [30, 50, np.nan]})
    a = subgroup_attributes(man)
    assert a["age_group"].tolist()[:2] == ["< 50", "≥ 50"] and pd.isna(a["age_group"].iloc[2])
    assert a["patient_id"].tolist() == ["1", "2", "3"]
    assert subgroup_attributes(pd.DataFrame({"patient_id": [1]})) is None


def test_instability_by_hand():
    from cinescar.evaluation.tripod import instability

    rows = []
    fold_probs = {"a": [0.2, 0.4, 0.3], "b": [0.6, 0.8, 0.7]}  # a: final 0.3, b: final 0.7
    for pid, probs in fold_probs.items():
        rows += [{"fold": f, "split": "test", "patient_id": pid, "lge": int(pid == "b"), "prob": p}
                 for f, p in enumerate(probs)]
        rows.append({"fold": -1, "split": "test", "patient_id": pid, "lge": int(pid == "b"), "prob": np.mean(probs)})
    pts, summ = instability({"radiomics": pd.DataFrame(rows)}, {"radiomics": {"fold": -1, "cutoff": 0.35}})
    r = summ.iloc[0]
    assert len(pts) == 6 and r["n_folds"] == 3
    assert r["mape"] == pytest.approx((0.1 + 0.1 + 0 + 0.1 + 0.1 + 0) / 6)
    # at 0.35: a's final call is negative, its fold 1 (0.4) calls positive; b is positive everywhere
    assert r["share_calls_differ"] == pytest.approx(1 / 6) and r["share_patients_any_call_differs"] == 0.5


def test_participant_flow_accounts_for_every_manifest_patient():
    from cinescar.evaluation.tripod import participant_flow

    man = pd.DataFrame({"patient_id": list("abcdef"), "cohort": ["internal"] * 4 + ["external"] * 2,
                        "lge": [1, 0, 0, 1, 1, 0]})
    cohorts = [{"role": "development (out-of-fold validation)", "n_patients": 2, "n_pos": 1},
               {"role": "internal test", "n_patients": 1, "n_pos": 0},
               {"role": "external", "n_patients": 2, "n_pos": 1}]
    f = participant_flow(man, cohorts).set_index(["stage", "source"])
    assert f.loc[("manifest", "internal"), "n_patients"] == 4 and f.loc[("manifest", "external"), "n_pos"] == 1
    assert f.loc[("not in any analysis", "all"), "n_patients"] == 1 and f.loc[("not in any analysis", "all"), "n_pos"] == 1
