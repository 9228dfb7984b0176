"""Radiomics model per fold: no leakage, determinism, failure policies, choice of k, files written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinescar.errors import CinescarError
from cinescar.cohort.splits import fold_images, make_splits
from cinescar.radiomics.model import (
    PREDICTION_COLUMNS,
    LassoRanking,
    RadiomicsSettings,
    choose_k,
    fit_fold,
    fit_lasso,
    predict_images,
    recurrence,
)

N_FEATURES = 40
SETTINGS = RadiomicsSettings(k_candidates=(2, 5), seed=3)


def synthetic_cohort(n_internal: int = 36, n_external: int = 8, n_images: int = 4, seed: int = 0,
                     signal: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Index, feature table and splits: features 0-2 shift with the patient's LGE label, the rest is noise."""
    rng = np.random.default_rng(seed)
    rows, values = [], []
    scales = rng.uniform(0.5, 20, N_FEATURES)  # features live on very different scales (as radiomics do)
    scales[:3] = 1.0
    for i in range(n_internal + n_external):
        pid, lge = f"P{i:03d}", int(i % 2)
        for s in range(n_images):
            rows.append({"image_id": f"{pid}_ED_{s:02d}", "patient_id": pid, "center": "A",
                         "cohort": "internal" if i < n_internal else "external", "lge": lge, "phase": "ED",
                         "slice": s, "dev_selected": s < 3})
            x = rng.standard_normal(N_FEATURES) * scales
            x[:3] += signal * lge * np.array([3.0, 2.0, 1.5])
            values.append(x)
    index = pd.DataFrame(rows)
    features = pd.DataFrame(np.array(values), columns=[f"f{j:02d}" for j in range(N_FEATURES)])
    features.insert(0, "image_id", index["image_id"])
    patients = index.drop_duplicates("patient_id")[["patient_id", "cohort", "lge"]]
    return index, features, make_splits(patients, test_fraction=0.2, folds=3, seed=seed)


@pytest.fixture(scope="module")
def cohort():
    return synthetic_cohort()


def _fitted_state(result) -> dict:
    return {k: (m.scaler.data_min_.copy(), m.scaler.data_max_.copy(), m.imputer.statistics_.copy(),
                list(m.selected), m.classifier.coef_.copy(), m.classifier.intercept_.copy())
            for k, m in result.models.items()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        for x, y in zip(a[k], b[k]):
            if isinstance(x, list):
                assert x == y
            else:
                np.testing.assert_array_equal(x, y)


def test_test_and_external_features_do_not_touch_the_fit(cohort):
    index, features, splits = cohort
    base = fit_fold(features, index, splits, 0, SETTINGS)
    roles = fold_images(index, splits, 0)
    held_out = pd.concat([roles["test"], roles["external"], roles["val_all"]])["image_id"]
    tampered = features.copy()
    rows = tampered["image_id"].isin(held_out)
    rng = np.random.default_rng(99)
    tampered.loc[rows, tampered.columns[1:]] = rng.normal(1e6, 1e5, (int(rows.sum()), N_FEATURES))
    tampered.loc[rows[rows].index[:3], "f00"] = np.nan
    after = fit_fold(tampered, index, splits, 0, SETTINGS)
    _assert_same_state(_fitted_state(base), _fitted_state(after))
    # ...while the same tampering of *training* rows does change the fit (the check above can fail)
    train_rows = features["image_id"].isin(roles["train"]["image_id"])
    tampered_train = features.copy()
    tampered_train.loc[train_rows, "f05"] = rng.normal(0, 50, int(train_rows.sum()))
    changed = fit_fold(tampered_train, index, splits, 0, SETTINGS)
    assert not np.array_equal(changed.models[2].scaler.data_max_, base.models[2].scaler.data_max_)


def test_fold_fit_is_deterministic_and_row_order_free(cohort):
    index, features, splits = cohort
    a = fit_fold(features, index, splits, 1, SETTINGS)
    b = fit_fold(features.sample(frac=1, random_state=5), index.sample(frac=1, random_state=6), splits, 1, SETTINGS)
    _assert_same_state(_fitted_state(a), _fitted_state(b))
    pd.testing.assert_frame_equal(a.predictions_by_k, b.predictions_by_k)
    assert a.scores == b.scores


def test_fold_outputs_have_the_contract_shape(cohort):
    index, features, splits = cohort
    result = fit_fold(features, index, splits, 2, SETTINGS)
    preds = result.predictions_by_k
    assert set(preds.columns) == {"k", *PREDICTION_COLUMNS}
    roles = fold_images(index, splits, 2)
    for k in SETTINGS.k_candidates:
        p = preds[preds["k"] == k]
        assert sorted(p.loc[p["split"] == "val", "image_id"]) == sorted(roles["val_all"]["image_id"])
        assert sorted(p.loc[p["split"] == "test", "image_id"]) == sorted(roles["test"]["image_id"])
        assert sorted(p.loc[p["split"] == "external", "image_id"]) == sorted(roles["external"]["image_id"])
        assert p["prob"].between(0, 1).all()
        assert result.scores["k"][str(k)]["n_selected"] == k
        assert len(result.models[k].selected) == k
    # the informative features are found and the model separates the classes on validation images
    assert {"f00", "f01"} <= set(result.models[5].selected)
    assert result.scores["k"]["5"]["val_auc"] > 0.8
    sel = result.selected
    assert list(sel.columns) == ["fold", "k", "rank", "feature", "coefficient", "lasso_coefficient"]
    assert sel.groupby("k")["rank"].apply(list).to_dict() == {2: [1, 2], 5: [1, 2, 3, 4, 5]}


def test_lasso_fills_up_to_k_along_the_path():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(120, 30))
    y = (X[:, 0] + 0.05 * rng.standard_normal(120) > 0.5).astype(int)
    groups = np.repeat(np.arange(40), 3)
    ranking = fit_lasso(X, y, groups, RadiomicsSettings())
    n_nonzero = int(np.count_nonzero(ranking.lasso.coef_))
    k = n_nonzero + 3
    chosen = ranking.select(k)
    assert len(chosen) == len(set(chosen)) == k
    assert chosen[0] == 0  # the one informative feature ranks first
    assert set(np.flatnonzero(ranking.lasso.coef_)) <= set(chosen)
    assert isinstance(ranking, LassoRanking)


def test_failure_policy_impute_uses_training_medians(cohort):
    index, features, splits = cohort
    roles = fold_images(index, splits, 0)
    broken = features.copy()
    bad_train = roles["train"]["image_id"].iloc[0]
    bad_test = roles["test"]["image_id"].iloc[0]
    broken.loc[broken["image_id"].isin([bad_train, bad_test]), broken.columns[1:]] = np.nan
    result = fit_fold(broken, index, splits, 0, SETTINGS)
    model = result.models[5]
    assert result.scores["n_train_imputed"] == 1
    train_values = broken.set_index("image_id").loc[roles["train"]["image_id"]].drop(index=bad_train)
    np.testing.assert_allclose(model.medians.to_numpy(), train_values.median().to_numpy())
    row = broken[broken["image_id"] == bad_test]
    filled = row.fillna(model.medians)
    np.testing.assert_allclose(predict_images(model, row), predict_images(model, filled))
    assert bad_test in set(result.predictions_by_k["image_id"])


def test_failure_policy_exclude_drops_and_counts(cohort):
    index, features, splits = cohort
    roles = fold_images(index, splits, 0)
    broken = features.copy()
    bad = [roles["train"]["image_id"].iloc[0], *roles["external"]["image_id"].iloc[:2]]
    broken.loc[broken["image_id"].isin(bad), "f10"] = np.nan
    settings = RadiomicsSettings(k_candidates=(2, 5), seed=3, failure_policy="exclude")
    result = fit_fold(broken, index, splits, 0, settings)
    assert result.scores["n_excluded"] == {"train": 1, "external": 2}
    assert result.scores["n_train"] == len(roles["train"]) - 1
    assert not set(bad) & set(result.predictions_by_k["image_id"])
    assert np.isnan(predict_images(result.models[2], broken[broken["image_id"].isin(bad)])).all()
    with pytest.raises(CinescarError, match="failure_policy"):
        RadiomicsSettings(failure_policy="ignore")


def test_missing_features_are_an_error(cohort):
    index, features, splits = cohort
    result = fit_fold(features, index, splits, 0, SETTINGS)
    with pytest.raises(CinescarError, match="missing"):
        predict_images(result.models[2], features.drop(columns=["f03"]))
    with pytest.raises(CinescarError, match="no radiomics features"):
        fit_fold(features.iloc[5:], index, splits, 0, SETTINGS)


def test_choose_k_by_mean_auc_ties_to_fewer_features():
    cv = pd.DataFrame({"fold": [0, 1, 0, 1, 0, 1], "k": [5, 5, 10, 10, 20, 20],
                       "val_auc": [0.70, 0.80, 0.80, 0.78, 0.90, 0.50]})
    assert choose_k(cv) == 10  # means 0.75, 0.79, 0.70
    cv.loc[cv["k"] == 5, "val_auc"] = [0.80, 0.78]  # tie 0.79 / 0.79 -> smaller k
    assert choose_k(cv) == 5
    cv.loc[0, "val_auc"] = np.nan  # an undefined fold AUC is skipped in the mean: k=5 -> 0.78 < 0.79
    assert choose_k(cv) == 10
    assert choose_k(pd.DataFrame({"fold": [0, 1], "k": [5, 10], "val_auc": [np.nan, 0.6]})) == 10
    with pytest.raises(CinescarError):
        choose_k(pd.DataFrame({"fold": [0], "k": [5], "val_auc": [np.nan]}))


def test_recurrence_counts_folds():
    sel = pd.DataFrame({"fold": [0, 0, 1, 1, 1], "k": [2, 2, 2, 2, 5], "rank": [1, 2, 1, 2, 1],
                        "feature": ["a", "b", "a", "c", "z"], "coefficient": [1.0, 2.0, 3.0, 4.0, 5.0]})
    rec = recurrence(sel, 2)
    assert rec.iloc[0].to_dict() == {"feature": "a", "n_folds": 2, "folds": "0;1", "mean_rank": 1.0,
                                     "mean_coefficient": 2.0}
    assert set(rec["feature"]) == {"a", "b", "c"}


def test_run_fold_and_choose_write_the_stage_files(cohort, tmp_path, monkeypatch):
    from cinescar.radiomics.run import choose, load_model, run_fold

    monkeypatch.chdir(tmp_path)  # tracking's offline records go under ./results/mlflow
    index, features, splits = cohort
    features.to_parquet("features.parquet", index=False)
    index.to_parquet("index.parquet", index=False)
    Path("splits.json").write_text(json.dumps(splits))
    cfg = {"seed": 3, "mlflow": {"enabled": False}, "cohort": {"name": "test"},
           "radiomics": {"k_candidates": [2, 5], "C": 1.0, "failure_policy": "impute", "params": "none.yaml"}}
    out = Path("results/radiomics")
    paths = {}
    for fold in range(3):
        d = out / f"fold{fold}"
        paths[fold] = (d / "scores.json", d / "predictions_by_k.parquet", d / "model.joblib", d / "selected.csv")
        run_fold("features.parquet", "index.parquet", "splits.json", fold, cfg, *paths[fold])
    k = choose([p[0] for p in paths.values()], [p[1] for p in paths.values()], [p[3] for p in paths.values()],
               out / "chosen_k.json", out / "predictions.parquet", out / "selected_features.csv",
               out / "cv_scores.csv", out / "feature_recurrence.csv")
    assert k in (2, 5)
    assert json.loads((out / "chosen_k.json").read_text())["k"] == k
    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds.columns) == PREDICTION_COLUMNS
    assert set(preds["fold"]) == {0, 1, 2} and set(preds["split"]) == {"val", "test", "external"}
    assert len(pd.read_csv(out / "cv_scores.csv")) == 3 * 2
    assert set(pd.read_csv(out / "selected_features.csv")["k"]) == {2, 5}
    offline = json.loads(Path("results/mlflow/offline/radiomics-fold0.json").read_text())
    assert offline["tags"] == {"stage": "radiomics", "model": "radiomics", "fold": "0"}
    assert set(offline["metrics"]) == {"val_auc_k2", "val_auc_k5"}
    # the saved model reproduces the fold's predictions for the chosen k
    model = load_model(paths[1][2], chosen_k_path=out / "chosen_k.json")
    fold1 = preds[preds["fold"] == 1]
    rows = features.set_index("image_id").loc[fold1["image_id"]].reset_index()
    np.testing.assert_allclose(predict_images(model, rows), fold1["prob"].to_numpy())


@pytest.mark.slow
def test_pyradiomics_features_separate_two_textures():
    """End to end on real pyradiomics features: smooth vs rough myocardial texture on noisy slices."""
    from cinescar.radiomics.extract import extract_images

    rng = np.random.default_rng(7)
    size, n_patients, per_patient = 48, 20, 2
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    ring = (r >= 8) & (r < 14)
    images, masks, rows = [], [], []
    for i in range(n_patients):
        pid, lge = f"R{i:02d}", i % 2
        for s in range(per_patient):
            img = 0.3 + 0.05 * rng.standard_normal((size, size))
            img[r < 8] += 0.4
            img[ring] += 0.1 + (0.12 if lge else 0.03) * rng.standard_normal(int(ring.sum()))
            images.append(np.clip(img, 0, 1))
            masks.append(ring.astype(np.uint8))
            rows.append({"image_id": f"{pid}_ED_{s:02d}", "patient_id": pid, "lge": lge, "dev_selected": True,
                         "cohort": "internal"})
    index = pd.DataFrame(rows)
    params = Path(__file__).resolve().parents[1] / "config" / "radiomics.yaml"
    extracted = extract_images(np.array(images, np.float32), np.array(masks), index["image_id"], params)
    assert extracted.failures.empty
    splits = make_splits(index.drop_duplicates("patient_id"), test_fraction=0.25, folds=2, seed=0)
    result = fit_fold(extracted.features, index, splits, 0, RadiomicsSettings(k_candidates=(5,), seed=0))
    assert result.scores["k"]["5"]["val_auc"] > 0.9
    test = result.predictions_by_k[result.predictions_by_k["split"] == "test"]
    assert test.groupby("lge")["prob"].mean().diff().iloc[-1] > 0.3  # rough (LGE+) images score higher
