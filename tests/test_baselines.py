"""Baselines and controls: the clinical model, the out-of-fold combined models, the shortcut controls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cinescar.baselines import clinical, combined, controls
from cinescar.baselines.run import run_clinical, run_combined
from cinescar.errors import CinescarError, CohortError
from cinescar.evaluation.screening import patient_probabilities
from cinescar.radiomics.model import RadiomicsSettings

FOLDS = 3


def _splits(n_dev: int = 30, n_test: int = 9, n_ext: int = 6) -> dict:
    dev = [f"D{i:02d}" for i in range(n_dev)]
    folds = [{"fold": f, "val": dev[f::FOLDS], "train": sorted(set(dev) - set(dev[f::FOLDS]))} for f in range(FOLDS)]
    return {"seed": 0, "test": [f"T{i:02d}" for i in range(n_test)], "external": [f"X{i:02d}" for i in range(n_ext)],
            "folds": folds}


def _all_patients(splits: dict) -> list[str]:
    return sorted({p for f in splits["folds"] for p in f["val"]} | set(splits["test"]) | set(splits["external"]))


def _manifest(splits: dict, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pids = _all_patients(splits)
    lge = [int(i % 5 in (1, 3)) for i in range(len(pids))]
    return pd.DataFrame({"patient_id": pids, "lge": lge,
                         "cohort": ["external" if p.startswith("X") else "internal" for p in pids],
                         "MWT": [rng.normal(22 if y else 15, 3) for y in lge], "LVM": rng.normal(150, 30, len(pids)),
                         "sex": rng.choice(["M", "F", ""], len(pids)), "age": rng.normal(50, 10, len(pids))})


def _index(manifest: pd.DataFrame, n_images: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{"image_id": f"{r.patient_id}_ED_{j:02d}", "patient_id": r.patient_id, "lge": r.lge,
                          "dev_selected": j < 2, "phase": "ED", "slice": j, "n_slices": n_images}
                         for r in manifest.itertuples() for j in range(n_images)])  # fmt: skip


def _image_patients(splits: dict, manifest: pd.DataFrame) -> pd.DataFrame:
    """An image model's patient table whose every probability names its fold and patient uniquely."""
    lge = manifest.set_index("patient_id")["lge"]
    rows = []
    for f in splits["folds"]:
        for split, ids in (("val", f["val"]), ("test", splits["test"]), ("external", splits["external"])):
            for p in ids:
                code = (int(f["fold"]) * 1000 + _all_patients(splits).index(p) + 1) / 10_000  # unique per (fold, p)
                rows.append({"fold": int(f["fold"]), "split": split, "patient_id": p, "lge": int(lge[p]),
                             "prob": code, "n_images": 3})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------- clinical
def test_clinical_variables_present_and_coded():
    splits = _splits()
    manifest = _manifest(splits).drop(columns="age")
    data = clinical.clinical_data(manifest, splits, clinical.ClinicalSettings())
    assert data.variables == ["MWT", "LVM", "sex"] and set(data.absent) == {"LVEF", "LVEDV", "age"}
    assert set(data.X.columns) == {"MWT", "LVM", "male"}
    sex = manifest.set_index("patient_id")["sex"]
    assert (data.X.loc[sex == "M", "male"] == 1).all() and (data.X.loc[sex == "F", "male"] == 0).all()
    assert data.X.loc[sex == "", "male"].isna().all()  # unknown sex is missing, imputed later
    assert "not in the manifest: LVEF, LVEDV, age" in data.note


def test_clinical_imputation_uses_training_patients_only():
    splits = _splits()
    manifest = _manifest(splits)
    manifest.loc[manifest["patient_id"].isin(splits["test"]), "LVM"] = 10_000.0  # absurd test values
    manifest.loc[manifest["patient_id"] == splits["folds"][0]["train"][0], "MWT"] = np.nan
    data = clinical.clinical_data(manifest, splits, clinical.ClinicalSettings())
    model, probs = clinical.fit_fold(data, splits, 0, clinical.ClinicalSettings())
    train = data.X.loc[splits["folds"][0]["train"]]
    np.testing.assert_allclose(model.named_steps["impute"].statistics_, train.median().to_numpy())
    np.testing.assert_allclose(model.named_steps["scale"].mean_, train.fillna(train.median()).mean().to_numpy())
    assert set(probs["split"]) == {"val", "test", "external"}
    assert set(probs.loc[probs["split"] == "val", "patient_id"]) == set(splits["folds"][0]["val"])


def test_patient_level_model_in_the_image_contract():
    splits = _splits()
    manifest = _manifest(splits)
    index = _index(manifest)
    data = clinical.clinical_data(manifest, splits, clinical.ClinicalSettings())
    _, probs = clinical.fit_fold(data, splits, 1, clinical.ClinicalSettings())
    rows = clinical.to_image_rows(probs, index, splits, 1)
    assert list(rows.columns) == clinical.PREDICTION_COLUMNS
    # every val_all/test/external image is there, and the evaluation's max-over-images returns the model's output
    assert len(rows) == 3 * (len(splits["folds"][1]["val"]) + len(splits["test"]) + len(splits["external"]))
    back = patient_probabilities(rows).set_index(["split", "patient_id"])["prob"]
    np.testing.assert_array_equal(back.loc[list(zip(probs["split"], probs["patient_id"]))].to_numpy(), probs["prob"])


def test_cohort_without_clinical_columns_gets_a_sentence(tmp_path):
    splits = _splits()
    manifest = _manifest(splits)[["patient_id", "lge", "cohort"]]
    for col in ("center", "vendor", "ed_image", "ed_mask", "es_image", "es_mask"):
        manifest[col] = "x"
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    _index(manifest).to_parquet(tmp_path / "index.parquet")
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    cfg = {"seed": 1, "mlflow": {"enabled": False}, "cohort": {"name": "t"}}
    status = run_clinical(tmp_path / "manifest.csv", tmp_path / "index.parquet", tmp_path / "splits.json", cfg,
                          tmp_path / "c/predictions.parquet", tmp_path / "c/status.json", tmp_path / "c/model.joblib")
    assert status["available"] is False and "No clinical model" in status["note"]
    assert pd.read_parquet(tmp_path / "c/predictions.parquet").empty
    pd.DataFrame(columns=["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]).astype(
        {"prob": float, "fold": int}).to_parquet(tmp_path / "img.parquet")  # fmt: skip
    status = run_combined("dl", tmp_path / "img.parquet", tmp_path / "manifest.csv", tmp_path / "index.parquet",
                          tmp_path / "splits.json", cfg, tmp_path / "d/predictions.parquet", tmp_path / "d/status.json",
                          tmp_path / "d/model.joblib")  # fmt: skip
    assert status["available"] is False and "No DL + clinical model" in status["note"]


# --------------------------------------------------------------------------------------------- combined
def test_no_in_sample_probability_reaches_the_combined_model(monkeypatch):
    """Capture what the combined model is fitted on; decode each image probability back to the fold model that
    made it; that fold's training patients must never include the patient."""
    splits = _splits()
    manifest = _manifest(splits)
    data = clinical.clinical_data(manifest, splits, clinical.ClinicalSettings())
    patients = _image_patients(splits, manifest)
    decode = {round(combined.logit(np.array([r.prob]))[0], 9): (r.fold, r.patient_id) for r in patients.itertuples()}
    train_of = {int(f["fold"]): set(f["train"]) for f in splits["folds"]}
    seen = []
    real_fit = combined.fit_patients

    def spy(X, y, settings):
        seen.append(X.copy())
        return real_fit(X, y, settings)

    monkeypatch.setattr(combined, "fit_patients", spy)
    for fold in range(FOLDS):
        seen.clear()
        _, probs, stack = combined.fit_fold(data, patients, splits, fold, clinical.ClinicalSettings())
        (X,) = seen
        assert len(X) == len(splits["folds"][fold]["train"])
        for value in X[combined.IMAGE_COLUMN]:
            source_fold, pid = decode[round(value, 9)]
            assert pid in train_of[fold]  # a training patient of this combined model ...
            assert source_fold != fold and pid not in train_of[source_fold]  # ... scored by a model that never saw it
        # validation, test and external patients use this fold's own image model
        rest = stack[stack["split"] != "train"]
        assert (rest["source_fold"] == fold).all()
        assert set(probs.loc[probs["split"] == "val", "patient_id"]) == set(splits["folds"][fold]["val"])


def test_stacking_refuses_in_sample_or_missing_probabilities():
    splits = _splits()
    manifest = _manifest(splits)
    patients = _image_patients(splits, manifest)
    # a validation row of fold 0 for one of fold 0's own training patients: in-sample
    bad = patients.iloc[[0]].assign(patient_id=splits["folds"][0]["train"][0])
    with pytest.raises(CohortError, match="in-sample"):
        combined.stacking_table(pd.concat([patients, bad]), splits, 1)
    # a development patient validated in no fold has no out-of-fold probability
    lost = splits["folds"][2]["val"][0]
    with pytest.raises(CohortError, match=lost):
        combined.stacking_table(patients[~((patients["split"] == "val") & (patients["patient_id"] == lost))], splits, 0)
    # splits that do not validate every patient exactly once
    twice = json.loads(json.dumps(splits))
    twice["folds"][1]["val"].append(splits["folds"][0]["val"][0])
    extra = patients.iloc[[0]].assign(fold=1)
    with pytest.raises(CohortError):
        combined.out_of_fold(pd.concat([patients, extra]), twice)


# --------------------------------------------------------------------------------------------- controls
def test_slice_features_and_shape_columns():
    index = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "slice": [0, 4, 8, 0], "n_slices": [9, 9, 9, 1],
                          "phase": ["ED", "ES", "ED", "ES"]})
    f = controls.slice_features(index)
    np.testing.assert_allclose(f["relative_slice"], [0.0, 0.5, 1.0, 0.5])
    np.testing.assert_allclose(f["mid_distance_sq"], [0.25, 0.0, 0.25, 0.0])
    np.testing.assert_array_equal(f["phase_es"], [0, 1, 0, 1])
    table = pd.DataFrame({"image_id": ["a"], "original_shape2D_Perimeter": [1.0], "original_glcm_Idm": [2.0]})
    assert list(controls.shape_features(table).columns) == ["image_id", "original_shape2D_Perimeter"]
    with pytest.raises(CinescarError, match="shape2D"):
        controls.shape_features(table.drop(columns="original_shape2D_Perimeter"))
    assert controls.control_settings(RadiomicsSettings(k_candidates=(5, 10, 20)), 3).k_candidates == (3,)
    assert controls.control_settings(RadiomicsSettings(k_candidates=(5, 10, 20)), 10).k_candidates == (5, 10)


def test_slice_control_learns_a_slice_shortcut():
    """When LGE+ images sit at the stack's edges, slice position alone predicts the label: the control shows it."""
    splits = _splits()
    manifest = _manifest(splits)
    index = _index(manifest, n_images=6)
    lge = index["lge"].astype(bool)
    index["slice"] = np.where(lge, index["slice"] % 2 * 5, 2 + index["slice"] % 2)  # LGE+: slices 0/5; LGE-: 2/3
    preds, choice, results = controls.fit_control(controls.slice_features(index), index, splits,
                                                  RadiomicsSettings(k_candidates=(5,), inner_folds=3))
    assert choice["k"] == 3 and len(results) == FOLDS
    assert list(preds.columns) == clinical.PREDICTION_COLUMNS
    p = patient_probabilities(preds)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(p["lge"], p["prob"]) > 0.95
