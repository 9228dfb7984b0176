"""The pooled out-of-fold cut-off, the final model that does not look at the test cohort, the paper's
best-on-test rule kept and labelled, and the clinical comparison in the evaluation's files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cinescar.errors import CohortError
from cinescar.evaluation.screening import (
    FINAL_FOLD,
    choose_cutoff,
    final_probabilities,
    pooled_cutoff,
    pooled_validation,
    screening_table,
)
from cinescar.evaluation.study import build_study, default_operating_point
from test_report import CFG, make_study


def _patients() -> pd.DataFrame:
    """Two folds; fold 1's model gives every patient higher probabilities (calibrated differently)."""
    rows = [
        # fold, split, patient, lge, prob
        (0, "val", "A", 1, 0.30), (0, "val", "B", 1, 0.50), (0, "val", "C", 0, 0.20), (0, "val", "D", 0, 0.40),
        (1, "val", "E", 1, 0.80), (1, "val", "F", 1, 0.90), (1, "val", "G", 0, 0.60), (1, "val", "H", 0, 0.35),
        (0, "test", "T1", 1, 0.45), (0, "test", "T2", 0, 0.25), (1, "test", "T1", 1, 0.85), (1, "test", "T2", 0, 0.55),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["fold", "split", "patient_id", "lge", "prob"]).assign(n_images=1)


def test_pooled_cutoff_is_set_once_on_all_development_patients():
    p = _patients()
    # pooled LGE+ probabilities 0.9, 0.8, 0.5, 0.3: sensitivity >= 0.75 needs 3 of 4 -> the 3rd largest, 0.5
    assert pooled_cutoff(p, 0.75) == pytest.approx(0.50)
    # per fold the same rule gives 0.30 (fold 0) and 0.80 (fold 1): one LGE+ patient decides each
    assert choose_cutoff(np.array([1, 1, 0, 0]), np.array([0.3, 0.5, 0.2, 0.4]), 0.75) == pytest.approx(0.30)
    table = screening_table(p, 0.75, pooled=pooled_cutoff(p, 0.75))
    pooled = table[table["operating_point"] == "pooled"]
    assert set(pooled["cutoff"]) == {0.5} and set(pooled["cohort"]) == {"val", "test"}
    per_fold = table[(table["operating_point"] == "validation") & (table["cohort"] == "val")]
    assert per_fold.set_index("fold")["cutoff"].to_dict() == {0: pytest.approx(0.30), 1: pytest.approx(0.80)}
    # applied unchanged: fold 0's test patient T1 (0.45) falls below the pooled cut-off, fold 1's (0.85) above
    t = pooled[pooled["cohort"] == "test"].set_index("fold")
    assert t.loc[0, "sensitivity"] == 0.0 and t.loc[1, "sensitivity"] == 1.0


def test_a_patient_validated_twice_cannot_be_pooled():
    p = _patients()
    twice = pd.concat([p, p.iloc[[0]].assign(fold=1)])
    with pytest.raises(CohortError, match="patient A"):
        pooled_validation(twice)


def test_mean_final_model_is_the_mean_of_the_fold_models():
    p = _patients()
    final = final_probabilities(p, "mean").set_index("patient_id")
    assert final.loc["T1", "prob"] == pytest.approx((0.45 + 0.85) / 2) and final.loc["T2", "n_folds"] == 2
    assert set(final["split"]) == {"test"}  # validation patients are not scored by the final model
    with pytest.raises(CohortError, match="T2"):
        final_probabilities(p[~((p["fold"] == 1) & (p["patient_id"] == "T2"))], "mean")
    best = final_probabilities(p, "best_on_test", fold=1).set_index("patient_id")
    assert best.loc["T1", "prob"] == 0.85


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("oppoint")
    return root, make_study(root)


def _build(root, paths, cfg):
    from cinescar.cohort.splits import load_splits

    return build_study(paths, pd.read_parquet(root / "index.parquet"), load_splits(root / "splits.json"), cfg)


def test_study_default_is_pooled_cutoff_and_mean_final_model(study_files):
    root, paths = study_files
    study = _build(root, paths, CFG)
    assert default_operating_point(CFG) == "pooled"
    splits = json.loads((root / "splits.json").read_text())
    for model, pm in study.patients.items():
        info, op = study.final[model], study.operating_points[model]
        assert info["fold"] == FINAL_FOLD and info["rule"] == "mean" and info["cutoff"] == op["cutoff"]
        val = pm[(pm["split"] == "val") & (pm["fold"] >= 0)]
        assert sorted(val["patient_id"]) == sorted(p for f in splits["folds"] for p in f["val"])
        assert op["cutoff"] == choose_cutoff(val["lge"].to_numpy(), val["prob"].to_numpy(), 0.9)
        assert op["sensitivity"] >= 0.9 and op["pooling_cost"] == pytest.approx(op["within_fold_auc"] - op["pooled_oof_auc"])
        # within-fold AUC = the concordance of same-fold LGE+/LGE- pairs only (hand count)
        same, conc = 0, 0.0
        for _, vf in val.groupby("fold"):
            pos, neg = vf.loc[vf["lge"] == 1, "prob"].to_numpy(), vf.loc[vf["lge"] == 0, "prob"].to_numpy()
            conc += ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).sum()
            same += pos.size * neg.size
        assert op["within_fold_auc"] == pytest.approx(conc / same)
        # the final model's test AUC is that of the mean of the fold models' probabilities
        folds = pm[(pm["split"] == "test") & (pm["fold"] >= 0)].pivot(index="patient_id", columns="fold", values="prob")
        y = pm[(pm["split"] == "test") & (pm["fold"] == 0)].set_index("patient_id").loc[folds.index, "lge"]
        assert info["test_auc"] == pytest.approx(roc_auc_score(y, folds.mean(axis=1)))
        m = study.metrics
        rows = m[(m["model"] == model) & (m["fold"] == FINAL_FOLD)]
        assert set(rows["cohort"]) == {"test", "external"} and set(rows["operating_point"]) == {"pooled"}


def test_best_on_test_rule_is_kept_and_labelled_optimistic(study_files):
    root, paths = study_files
    cfg = {**CFG, "evaluation": {**CFG["evaluation"], "final_model": "best_on_test"}}
    study = _build(root, paths, cfg)
    m = study.metrics
    for model, info in study.final.items():
        aucs = m[(m["model"] == model) & (m["cohort"] == "test") & (m["operating_point"] == "validation")]
        aucs = aucs.set_index("fold")["auc"]
        assert info["fold"] == int(aucs.idxmax()) and info["optimistic"] is True
        assert info["rule_label"].startswith("optimistic (chosen on the internal test cohort)")
        assert not (study.patients[model]["fold"] == FINAL_FOLD).any()


def test_clinical_and_combined_models_reach_every_table(study_files, tmp_path, monkeypatch):
    from cinescar.baselines.run import run_clinical, run_combined
    from cinescar.evaluation.study import evaluate_study
    from workflow_names import evaluation_outputs

    root, paths = study_files
    monkeypatch.chdir(tmp_path)
    cfg = {**CFG, "clinical": {"variables": ["LVM", "age", "sex", "MWT"]}}
    b = tmp_path / "baselines"
    statuses = {"clinical": b / "clinical/status.json", "radiomics_clinical": b / "radiomics_clinical/status.json"}
    status = run_clinical(root / "manifest.csv", root / "index.parquet", root / "splits.json", cfg,
                          b / "clinical/predictions.parquet", statuses["clinical"], b / "clinical/model.joblib")
    assert status["variables"] == ["LVM", "age", "sex"] and status["absent"] == ["MWT"]
    run_combined("radiomics", paths["radiomics"], root / "manifest.csv", root / "index.parquet", root / "splits.json",
                 cfg, b / "radiomics_clinical/predictions.parquet", statuses["radiomics_clinical"],
                 b / "radiomics_clinical/model.joblib")  # fmt: skip
    preds = {**paths, "clinical": b / "clinical/predictions.parquet",
             "radiomics_clinical": b / "radiomics_clinical/predictions.parquet"}
    files = evaluate_study(preds, root / "index.parquet", root / "splits.json", root / "manifest.csv",
                           evaluation_outputs(tmp_path / "ev"), cfg, statuses=statuses)  # fmt: skip
    metrics = pd.read_csv(files["metrics"])
    assert {"clinical", "radiomics_clinical"} <= set(metrics["model"])
    inc = pd.read_csv(files["incremental"])
    assert set(inc["cohort"]) == {"test", "external", "val"} and (inc["reference"] == "clinical").all()
    for r in inc[inc["model"] == "radiomics_clinical"].itertuples():
        assert r.diff == pytest.approx(r.auc - r.auc_reference) and r.diff_low <= r.diff <= r.diff_high
        assert 0 <= r.p <= 1
    summary = json.loads(files["summary"].read_text())
    assert summary["model_notes"]["clinical"].startswith("Clinical model on LVM, age, sex")
    # the only combined model is the pre-specified primary comparison, stated first with its one verdict
    pc = summary["primary_comparison"]
    assert pc["model"] == "radiomics_clinical" and pc["reference"] == "clinical" and pc["method"] == "delong"
    assert summary["incremental"][0].startswith("Primary comparison (pre-specified): Radiomics + clinical vs Clinical")
    assert pc["verdict"] == ("yes" if pc["diff_low"] > 0 else pc["verdict"]) and "descriptive" in summary["multiplicity"]
    delong = pd.read_csv(files["delong"])
    assert {"clinical", "radiomics_clinical"} <= set(delong["model_a"]) | set(delong["model_b"])
