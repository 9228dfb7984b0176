"""DL-Radiomics fusion: no leakage, determinism, the choice of k and classifier, the stage's files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinescar.errors import CinescarError, CohortError
from cinescar.fusion.model import (
    CLASSIFIERS,
    FusionSettings,
    choose_configuration,
    fit_fold,
    fuse_features,
    make_classifier,
)
from cinescar.cohort.splits import fold_images, make_splits
from cinescar.radiomics.model import RadiomicsSettings

SETTINGS = FusionSettings(k_candidates=(2, 4), seed=3, lasso=RadiomicsSettings(inner_folds=3, seed=3))
N_RAD, N_DL = 12, 8


def synthetic(n_internal: int = 30, n_external: int = 6, n_images: int = 3, seed: int = 0):
    """Index, radiomics and DL feature tables, splits; a few features carry the label, one radiomics NaN."""
    rng = np.random.default_rng(seed)
    rows, rad, dl = [], [], []
    for i in range(n_internal + n_external):
        pid, lge = f"P{i:03d}", int(i % 2)
        for s in range(n_images):
            rows.append({"image_id": f"{pid}_ED_{s:02d}", "patient_id": pid, "cohort":
                         "internal" if i < n_internal else "external", "lge": lge, "dev_selected": s < 2})
            r = rng.standard_normal(N_RAD) * rng.uniform(1, 50, N_RAD)
            r[0] += 40 * lge
            d = rng.standard_normal(N_DL)
            d[1] += 1.5 * lge
            rad.append(r)
            dl.append(d)
    index = pd.DataFrame(rows)
    radiomics = pd.DataFrame(np.array(rad), columns=[f"original_f{j:02d}" for j in range(N_RAD)])
    radiomics.insert(0, "image_id", index["image_id"])
    radiomics.iloc[5, 3] = np.nan  # one failed extraction: imputed (default failure policy)
    dlf = pd.DataFrame(np.array(dl), columns=[f"dl_{j:03d}" for j in range(N_DL)])
    dlf.insert(0, "image_id", index["image_id"])
    patients = index.drop_duplicates("patient_id")[["patient_id", "cohort", "lge"]]
    return index, radiomics, dlf, make_splits(patients, test_fraction=0.2, folds=3, seed=seed)


@pytest.fixture(scope="module")
def data():
    return synthetic()


def _state(result) -> dict:
    out = {}
    for key, m in result.models.items():
        clf = m.classifier
        probe = np.linspace(0, 1, 4 * len(m.selected)).reshape(4, -1)
        out[key] = (m.scaler.data_min_.copy(), m.scaler.data_max_.copy(), m.imputer.statistics_.copy(),
                    list(m.selected), clf.predict_proba(probe))
    return out


def test_held_out_features_do_not_touch_the_fit(data):
    index, rad, dl, splits = data
    base = fit_fold(fuse_features(rad, dl), index, splits, 0, SETTINGS)
    roles = fold_images(index, splits, 0)
    held_out = set(pd.concat([roles["test"], roles["external"], roles["val_all"]])["image_id"])
    rng = np.random.default_rng(7)
    rad2, dl2 = rad.copy(), dl.copy()
    for df in (rad2, dl2):
        rows = df["image_id"].isin(held_out).to_numpy()
        cols = df.columns[1:]
        df.loc[rows, cols] = rng.normal(1000, 500, (rows.sum(), len(cols)))
    tampered = fit_fold(fuse_features(rad2, dl2), index, splits, 0, SETTINGS)
    a, b = _state(base), _state(tampered)
    assert a.keys() == b.keys() and len(a) == len(SETTINGS.k_candidates) * len(CLASSIFIERS)
    for key in a:
        for x, y in zip(a[key], b[key], strict=True):
            if isinstance(x, list):
                assert x == y
            else:
                np.testing.assert_array_equal(x, y)
    # the tampered images' predictions do change: the check above is not vacuous
    pa = base.predictions_by_config.query("split == 'test'")["prob"].to_numpy()
    pb = tampered.predictions_by_config.query("split == 'test'")["prob"].to_numpy()
    assert not np.allclose(pa, pb)


def test_fit_is_deterministic_and_row_order_free(data):
    index, rad, dl, splits = data
    a = fit_fold(fuse_features(rad, dl), index, splits, 1, SETTINGS)
    shuffled = fuse_features(rad.sample(frac=1, random_state=1), dl.sample(frac=1, random_state=2))
    b = fit_fold(shuffled, index.sample(frac=1, random_state=3), splits, 1, SETTINGS)
    pd.testing.assert_frame_equal(pd.DataFrame(a.scores["scores"]), pd.DataFrame(b.scores["scores"]))
    cols = ["k", "classifier", "image_id"]
    pd.testing.assert_frame_equal(a.predictions_by_config.sort_values(cols).reset_index(drop=True),
                                  b.predictions_by_config.sort_values(cols).reset_index(drop=True))


def test_predictions_cover_every_held_out_image_per_configuration(data):
    index, rad, dl, splits = data
    res = fit_fold(fuse_features(rad, dl), index, splits, 2, SETTINGS)
    roles = fold_images(index, splits, 2)
    per_config = res.predictions_by_config.groupby(["k", "classifier"]).size()
    assert (per_config == len(roles["val_all"]) + len(roles["test"]) + len(roles["external"])).all()
    assert res.predictions_by_config["prob"].between(0, 1).all()
    # the label-carrying features are found by the shared LASSO selector
    assert {"original_f00", "dl_001"} <= {r["feature"] for r in res.scores["selected"]["4"]}


def test_shared_transforms_and_thread_count_change_no_number(data):
    """fit_fold imputes and scales each image set once for all configurations and runs gradient boosting on one
    OpenMP thread: its predictions must equal each stored model's own `predict`, with 1 or 2 threads alike."""
    index, rad, dl, splits = data
    features = fuse_features(rad, dl)
    one = fit_fold(features, index, splits, 0, replace(SETTINGS, threads=1))
    two = fit_fold(features, index, splits, 0, replace(SETTINGS, threads=2))
    pd.testing.assert_frame_equal(one.predictions_by_config, two.predictions_by_config, check_exact=True)
    preds = one.predictions_by_config
    for (k, name), model in one.models.items():
        for split in ("val", "test", "external"):  # one predict call per image set, as fit_fold makes them
            rows = preds[(preds["k"] == k) & (preds["classifier"] == name) & (preds["split"] == split)]
            direct = model.predict(features.loc[rows["image_id"]])
            np.testing.assert_array_equal(rows["prob"].to_numpy(), direct)


def test_feature_table_errors_name_image_and_patient(data):
    index, rad, dl, splits = data
    bad = dl.copy()
    bad.loc[3, "dl_002"] = np.nan
    with pytest.raises(CohortError, match="patient P001"):
        fuse_features(rad, bad, dl_source="dl.parquet")
    with pytest.raises(CohortError, match="lack radiomics or DL features"):
        fit_fold(fuse_features(rad.iloc[3:], dl), index, splits, 0, SETTINGS)
    with pytest.raises(CinescarError, match="dl_000"):
        fuse_features(rad, dl.rename(columns={"dl_000": "feat"}))


def test_choice_k_by_reference_classifier_then_classifier_by_mean_and_sd():
    rows = []
    aucs = {  # (k, classifier): AUC per fold
        (2, "logistic_l1"): [0.70, 0.72, 0.71], (4, "logistic_l1"): [0.75, 0.76, 0.74],
        (2, "svm"): [0.95, 0.95, 0.95], (4, "svm"): [0.80, 0.70, 0.90],  # mean 0.80, SD 0.10
        (2, "mlp"): [0.5, 0.5, 0.5], (4, "mlp"): [0.79, 0.80, 0.81],  # mean 0.80, SD 0.01: wins the tie
    }
    for (k, clf), vals in aucs.items():
        rows += [{"fold": f, "k": k, "classifier": clf, "val_auc": v} for f, v in enumerate(vals)]
    settings = FusionSettings(classifiers=("logistic_l1", "svm", "mlp"))
    res = choose_configuration(pd.DataFrame(rows), settings)
    assert res["k"] == 4  # k from the L1 logistic regression, not from the SVM's best at k=2
    assert res["classifier"] == "mlp"
    t = res["classifier_table"].set_index("classifier")
    assert t.loc["svm", "mean"] == pytest.approx(0.80) and t.loc["svm", "sd"] == pytest.approx(0.10)
    assert t["chosen"].sum() == 1 and t.loc["mlp", "chosen"]


def test_unknown_classifier_is_a_config_error():
    with pytest.raises(CinescarError, match="unknown"):
        FusionSettings(classifiers=("logistic_l1", "xgboost"))
    with pytest.raises(CinescarError, match="unknown fusion classifier"):
        make_classifier("xgboost", 0)
    assert make_classifier("random_forest", 0, {"n_estimators": 7}).n_estimators == 7


def test_stage_files(data, tmp_path, monkeypatch):
    from cinescar.fusion.run import choose, load_model, run_fold
    from cinescar.cohort.splits import save_splits

    monkeypatch.chdir(tmp_path)  # MLflow's offline records land here
    index, rad, dl, splits = data
    splits = {**splits, "folds": splits["folds"][:2]}
    cfg = {"seed": 3, "mlflow": {"enabled": False}, "radiomics": {"inner_folds": 3},
           "fusion": {"k_candidates": [2, 4], "classifiers": ["logistic_l1", "hist_gradient_boosting"]}}
    index.to_parquet("index.parquet")
    rad.to_parquet("rad.parquet")
    save_splits(splits, "splits.json")
    paths = []
    for fold in (0, 1):
        dl.to_parquet(f"dl{fold}.parquet")
        out = [f"fusion/fold{fold}/{n}" for n in ("scores.json", "predictions_by_config.parquet", "model.joblib")]
        run_fold("rad.parquet", f"dl{fold}.parquet", "index.parquet", "splits.json", fold, cfg, *out)
        paths.append(out)
    choice = choose([p[0] for p in paths], [p[1] for p in paths], cfg, "fusion/choice.json",
                    "fusion/classifiers.csv", "fusion/predictions.parquet", "fusion/selected_features.csv")
    assert json.loads(Path("fusion/choice.json").read_text())["k"] == choice["k"] in (2, 4)
    preds = pd.read_parquet("fusion/predictions.parquet")
    assert list(preds.columns) == ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]
    assert set(preds["split"]) == {"val", "test", "external"} and set(preds["fold"]) == {0, 1}
    table_s1 = pd.read_csv("fusion/classifiers.csv")
    assert set(table_s1["classifier"]) == {"logistic_l1", "hist_gradient_boosting"}
    assert {"fold_0", "fold_1", "mean", "sd", "chosen"} <= set(table_s1.columns)
    sel = pd.read_csv("fusion/selected_features.csv")
    assert set(sel["k"]) == {2, 4} and set(sel["fold"]) == {0, 1}
    model = load_model("fusion/fold0/model.joblib", "fusion/choice.json")
    X = fuse_features(rad, dl).loc[preds.query("fold == 0")["image_id"]]
    np.testing.assert_allclose(model.predict(X), preds.query("fold == 0")["prob"].to_numpy())
