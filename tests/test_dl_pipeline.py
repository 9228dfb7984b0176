"""DL jobs end to end on a tiny preprocessed store: tuning's data, one fold's outputs, the gather."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cinescar.errors import CinescarError
from workflow_names import gather_dl, train_dl_fold, tune_dl

REPO = Path(__file__).resolve().parents[1]
INTERNAL = [f"P{i:02d}" for i in range(12)]
EXTERNAL = [f"E{i}" for i in range(4)]
SPLITS = {
    "seed": 0,
    "test": ["P10", "P11"],
    "external": EXTERNAL,
    "folds": [
        {"fold": 0, "train": INTERNAL[:6], "val": INTERNAL[6:10]},
        {"fold": 1, "train": INTERNAL[4:10], "val": INTERNAL[:4]},
    ],
}


def write_store(root: Path, nan_roles: bool = False) -> pd.DataFrame:
    """Two centres (internal 'a', external 'ext'), 3 slices x 2 phases per patient, 256 x 256 images.

    LGE+ patients carry a bright patch in the myocardial ring; slice 2 of every patient is not
    development-selected; `nan_roles` fills every internal-test and external image with NaN.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    r = np.hypot(yy - 128, xx - 128)
    ring = ((r >= 20) & (r < 30)).astype(np.uint8)
    rows = {"a": [], "ext": []}
    arrays = {"a": ([], []), "ext": ([], [])}
    for i, pid in enumerate(INTERNAL + EXTERNAL):
        slug = "ext" if pid.startswith("E") else "a"
        lge = i % 2
        for phase in ("ED", "ES"):
            for z in range(3):
                img = (0.2 + 0.05 * rng.standard_normal((256, 256))).astype(np.float32)
                if lge:
                    img += 0.6 * ring * (xx > 128)
                if nan_roles and (pid in SPLITS["test"] or slug == "ext"):
                    img[:] = np.nan
                arrays[slug][0].append(img)
                arrays[slug][1].append(ring)
                rows[slug].append({
                    "image_id": f"{pid}_{phase}_{z:02d}", "patient_id": pid, "center": slug.upper(),
                    "center_slug": slug, "vendor": "V", "cohort": "external" if slug == "ext" else "internal",
                    "lge": lge, "phase": phase, "slice": z, "n_slices": 3,
                    "scar_slice": pd.NA if slug == "ext" else bool(lge and z < 2), "dev_selected": z < 2,
                    "row": len(rows[slug]), "spacing_x": 1.0, "spacing_y": 1.0, "orig_rows": 256,
                    "orig_cols": 256,
                })
    for slug in rows:
        d = root / "centers" / slug
        d.mkdir(parents=True)
        np.save(d / "images.npy", np.stack(arrays[slug][0]))
        np.save(d / "masks.npy", np.stack(arrays[slug][1]))
    index = pd.concat([pd.DataFrame(v) for v in rows.values()], ignore_index=True)
    index["scar_slice"] = index["scar_slice"].astype("boolean")
    index.to_parquet(root / "index.parquet", index=False)
    (root / "splits.json").write_text(json.dumps(SPLITS))
    return index


def tiny_cfg(**dl_overrides) -> dict:
    """The dl section's shipped defaults, shrunk; MLflow off (offline JSON records)."""
    from cinescar.config import load_config

    dl = load_config()["dl"]  # config/config.yaml resolved: the shipped values, defaults included
    dl["network"]["base_width"] = 2
    dl["training"].update(max_epochs=2, batch_size=8)
    dl["tuning"].update(n_trials=2, max_epochs=1, max_train_images=None,
                        search_space={"base_width": {"choices": [2]}, "learning_rate": {"low": 1e-4, "high": 1e-3,
                                                                                        "log": True}})
    dl["gradcam"]["n_images"] = 2
    for key, value in dl_overrides.items():
        dl[key] = {**dl[key], **value} if isinstance(value, dict) else value
    return {"seed": 5, "dl": dl, "mlflow": {"enabled": False}, "cohort": {"name": "test"}}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's offline records go to ./results/mlflow/offline
    return tmp_path / "store"


def test_tuning_never_sees_test_or_external_images(store, monkeypatch):
    import cinescar.preprocessing.store as store_mod
    index = write_store(store, nan_roles=True)  # a test or external image in training would raise (NaN)
    seen: list[str] = []
    real = store_mod.load_arrays

    def spy(idx, root=store_mod.DEFAULT_ROOT):
        seen.extend(idx["image_id"])
        return real(idx, root)

    monkeypatch.setattr(store_mod, "load_arrays", spy)
    out = Path("results/dl/tuning/best_params.json")
    result = tune_dl(store, tiny_cfg(), out)

    fold0 = SPLITS["folds"][0]
    allowed = index[index["patient_id"].isin(fold0["train"] + fold0["val"]) & index["dev_selected"]]
    assert set(seen) == set(allowed["image_id"])
    saved = json.loads(out.read_text())
    assert saved["params"] == result["params"]
    assert set(saved["params"]) == {"base_width", "learning_rate", "kernel_size", "dropout"}
    assert saved["params"]["base_width"] == 2 and 1e-4 <= saved["params"]["learning_rate"] <= 1e-3
    assert len(saved["trials"]) == 2 and saved["fold"] == 0
    record = json.loads(Path("results/mlflow/offline/dl-tuning.json").read_text())
    assert record["tags"]["stage"] == "dl" and "best.learning_rate" in record["params"]


def test_tuning_disabled_writes_configured_values(store):
    write_store(store)
    cfg = tiny_cfg(tuning={"enabled": False})
    result = tune_dl(store, cfg, "best.json")
    assert result["tuned"] is False
    assert result["params"] == {"base_width": 2, "kernel_size": 5, "dropout": 0.5,
                                "learning_rate": cfg["dl"]["training"]["learning_rate"]}


def test_train_fold_writes_the_contracted_outputs(store):
    from cinescar.dl.features import FEATURE_COLUMNS
    from cinescar.dl.inference import load_model, predict
    from cinescar.dl.data import three_channels
    from cinescar.preprocessing.store import load_arrays

    index = write_store(store)
    params = Path("best_params.json")
    params.write_text(json.dumps({"params": {"base_width": 2, "kernel_size": 3, "dropout": 0.3,
                                             "learning_rate": 1e-3}}))
    out, gc = Path("results/dl/fold1"), Path("results/dl/gradcam/fold1")
    summary = train_dl_fold(store, params, tiny_cfg(), 1, out, gc)

    # weights: a plain state_dict (weights_only) + hyperparameters JSON
    state = torch.load(out / "model.ckpt", weights_only=True)
    assert "blocks.2.conv.weight" in state and state["blocks.0.conv.weight"].shape[-1] == 3
    hp = json.loads((out / "hparams.json").read_text())
    assert hp["network"]["kernel_size"] == 3 and hp["best"]["epoch"] in (0, 1) and len(hp["history"]) == 2

    # predictions: val_all (incl. non-dev slices), test and external of fold 1, architecture shape
    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds.columns) == ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]
    by_split = preds.groupby("split")["patient_id"].unique().map(set).to_dict()
    assert by_split == {"val": set(SPLITS["folds"][1]["val"]), "test": set(SPLITS["test"]),
                        "external": set(EXTERNAL)}
    assert len(preds) == 6 * (4 + 2 + 4) and not preds["dev_selected"].all()
    assert preds["prob"].between(0, 1).all() and (preds["fold"] == 1).all()

    # features: every image of the index, 256 columns, consistent with the saved model
    feats = pd.read_parquet(out / "features.parquet")
    assert list(feats.columns) == ["image_id", *FEATURE_COLUMNS] and len(FEATURE_COLUMNS) == 256
    assert list(feats["image_id"]) == list(index["image_id"])
    net = load_model(out / "model.ckpt")
    images, masks = load_arrays(index.iloc[:5], store)
    p, f = predict(net, three_channels(images, masks))
    np.testing.assert_allclose(f, feats.iloc[:5, 1:].to_numpy(), rtol=1e-4, atol=1e-5)
    ids = index["image_id"].iloc[:5]  # patient P00: fold 1's validation, so predicted
    np.testing.assert_allclose(p, preds.set_index("image_id")["prob"].loc[ids].to_numpy(), rtol=1e-4)

    # Grad-CAM: the most probable scar slices of LGE+ internal-test patients
    done = json.loads((gc / "done.json").read_text())
    assert len(done["images"]) == 2 and all((gc / name).exists() for name in done["images"])
    chosen = {name[:-4] for name in done["images"]}
    rows = index.set_index("image_id").loc[sorted(chosen)]
    assert set(rows["patient_id"]) <= set(SPLITS["test"]) and rows["scar_slice"].all() and (rows["lge"] == 1).all()
    assert summary["gradcam"] == done["images"]

    # MLflow record (offline here): tags, per-epoch metrics, the checkpoint as artifact
    record = json.loads(Path("results/mlflow/offline/dl-fold1.json").read_text())
    assert record["tags"] == {"stage": "dl", "model": "dl", "fold": "1", "best_epoch": str(hp["best"]["epoch"]),
                              "selection_metric": "val_auc"}
    assert len(record["metrics"]["val_acc"]) == 2 and "best_val_acc" in record["metrics"]
    assert len(record["metrics"]["selection"]) == 2 and "epochs_run" in record["metrics"]
    assert any(a.endswith("selection_curve.csv") for a in record["artifacts"])
    curve = pd.read_csv(out / "selection_curve.csv")
    assert list(curve["epoch"]) == [0, 1] and (curve["selection_metric"] == "val_auc").all()
    assert curve["best"].sum() == 1 and int(curve.loc[curve["best"], "epoch"].iloc[0]) == hp["best"]["epoch"]
    assert hp["pos_weight"] == 1.0  # write_store: half the training images are LGE+
    assert any(a.endswith("model.ckpt") for a in record["artifacts"])
    assert not Path("lightning_logs").exists() and not (out / "lightning_logs").exists()

    # gather: folds concatenated; the same image twice in one fold is an error
    other = preds.assign(fold=0)
    other.to_parquet("fold0.parquet")
    table = gather_dl([out / "predictions.parquet", "fold0.parquet"], "results/dl/predictions.parquet")
    assert len(table) == 2 * len(preds)
    with pytest.raises(CinescarError, match="twice"):
        gather_dl([out / "predictions.parquet", out / "predictions.parquet"], "x.parquet")


def test_untrainable_inputs_are_named(store):
    from cinescar.dl.train import role_arrays

    index = write_store(store, nan_roles=True)
    with pytest.raises(CinescarError, match="P10_ED_00.*patient P10"):
        role_arrays(index[index["patient_id"] == "P10"], store)


def test_seeds_average_their_probabilities(store):
    """dl.seeds: 2 -> the fold's probabilities are the mean of the two seeds' single-seed runs."""
    write_store(store)
    params = Path("best_params.json")
    params.write_text(json.dumps({"params": {"base_width": 2, "kernel_size": 3, "dropout": 0.3,
                                             "learning_rate": 1e-3}}))
    cfg = tiny_cfg(training={"max_epochs": 1}, gradcam={"n_images": 0})
    probs = {}
    for name, seed, seeds in (("a", 5, 1), ("b", 5 + 1000, 1), ("ab", 5, 2)):
        run_cfg = {**cfg, "seed": seed, "dl": {**cfg["dl"], "seeds": seeds}}
        train_dl_fold(store, params, run_cfg, 0, Path(name), Path(name) / "gc")
        probs[name] = pd.read_parquet(Path(name) / "predictions.parquet")["prob"].to_numpy()
    assert not np.allclose(probs["a"], probs["b"])
    np.testing.assert_allclose(probs["ab"], (probs["a"] + probs["b"]) / 2, rtol=1e-6)
    hp = json.loads((Path("ab") / "hparams.json").read_text())
    assert hp["seeds"] == [5, 1005] and len(hp["per_seed"]) == 2
    curve = pd.read_csv(Path("ab") / "selection_curve.csv")
    assert sorted(curve["seed"].unique()) == [5, 1005]
