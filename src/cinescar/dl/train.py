"""One DL training job per fold: fit, keep the best epoch, predict, extract DL features, draw Grad-CAM.

`fit_network` is the reusable core (also used by tuning): Lightning with `accelerator="auto"` (GPU when
there is one, the CPU otherwise, no code change), `deterministic=True` and `seed_everything` so a fixed
seed gives identical weights on the CPU, no logger, no progress bar, no model summary and no checkpoint
files from Lightning (nothing lands in `lightning_logs/`).

Checkpoint choice (paper: "the model with the best ... accuracy ... over the validation subset"): the epoch
with the highest image-level accuracy on the fold's `val` images; ties go to the lower validation loss, then
to the earlier epoch. Lightning's `ModelCheckpoint` monitors one number only, so a small callback keeps the
best weights in memory instead; they are saved as a plain `state_dict` (loadable with
`torch.load(weights_only=True)`) next to a JSON of the network's hyperparameters.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from cinescar.dl.data import ScarDataModule
from cinescar.dl.features import features_table, predict_index
from cinescar.dl.inference import resolve_device, three_channels
from cinescar.dl.module import ScarModule
from cinescar.dl.network import ScarNet, count_parameters
from cinescar.errors import CinescarError

log = logging.getLogger(__name__)

NETWORK_KEYS = ("base_width", "kernel_size", "dropout", "dense_activation")
PREDICTION_SPLITS = ("val_all", "test", "external")
PREDICTION_COLUMNS = ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(images (N,H,W), masks (N,H,W), labels (N,)) of one role."""


def better(a: dict, b: dict | None) -> bool:
    """Is epoch record `a` a better checkpoint than `b`? Higher val accuracy, then lower val loss, then earlier."""
    if b is None:
        return True
    if a["val_acc"] != b["val_acc"]:
        return a["val_acc"] > b["val_acc"]
    if a["val_loss"] != b["val_loss"]:
        return a["val_loss"] < b["val_loss"] or math.isnan(b["val_loss"])
    return a["epoch"] < b["epoch"]


class BestWeights(pl.Callback):
    """Keeps (in memory) the weights of the best epoch by `better`; runs after each epoch's validation."""

    def __init__(self) -> None:
        self.best: dict | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: ScarModule) -> None:
        if not pl_module.history:
            return
        record = pl_module.history[-1]
        if better(record, self.best):
            self.best = dict(record)
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.net.state_dict().items()}


class EpochCallback(pl.Callback):
    """Hands each epoch's record to a function (MLflow logging, Optuna reporting)."""

    def __init__(self, fn: Callable[[dict, pl.Trainer], None]) -> None:
        self.fn = fn

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: ScarModule) -> None:
        if pl_module.history:
            self.fn(pl_module.history[-1], trainer)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit chatter (device banner, tips, worker hints); warnings that matter stay."""
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
             "lightning.pytorch.accelerators.cuda")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in (".*does not have many workers.*", ".*log_every_n_steps.*", ".*LeafSpec.*",
                            ".*litlogger.*"):
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@dataclass
class FitResult:
    """The trained network (best epoch's weights loaded, on the CPU) and what happened."""

    net: ScarNet
    history: list[dict]
    best: dict
    network_params: dict


def network_params(params: dict) -> dict:
    """The network's part of a parameter dict (config `dl.network` merged with tuned values)."""
    return {k: params[k] for k in NETWORK_KEYS if k in params}


def fit_network(
    train: Arrays,
    val: Arrays,
    params: dict,
    training: dict,
    augmentation: dict,
    seed: int,
    callbacks: Sequence[pl.Callback] = (),
    root_dir: str | Path | None = None,
) -> FitResult:
    """Train a ScarNet on `train`, validate on `val` every epoch, return the best epoch's network.

    `params`: network keys (base_width, kernel_size, dropout, dense_activation) and learning_rate.
    `training`: config `dl.training` (batch_size, max_epochs, num_workers, accelerator, devices, precision,
    deterministic, weight_decay, early_stopping_patience).
    """
    pl.seed_everything(int(seed), workers=True, verbose=False)
    datamodule = ScarDataModule(
        train, val,
        batch_size=int(training.get("batch_size", 8)),
        num_workers=int(training.get("num_workers", 0)),
        seed=int(seed),
        augmentation=augmentation,
    )
    module = ScarModule(
        network=network_params(params),
        learning_rate=float(params.get("learning_rate", training.get("learning_rate", 1e-4))),
        weight_decay=float(training.get("weight_decay", 0.0)),
    )
    best = BestWeights()
    all_callbacks: list[pl.Callback] = [best, *callbacks]
    patience = int(training.get("early_stopping_patience") or 0)
    if patience > 0:
        all_callbacks.append(pl.callbacks.EarlyStopping(monitor="val_acc", mode="max", patience=patience))
    with quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=int(training.get("max_epochs", 3)),
            accelerator=str(training.get("accelerator", "auto")),
            devices=training.get("devices", 1),
            precision=training.get("precision", "32-true"),
            deterministic=training.get("deterministic", True),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=all_callbacks,
            default_root_dir=str(root_dir) if root_dir else None,
        )
        trainer.fit(module, datamodule=datamodule)
    if best.state is None:
        raise CinescarError("DL training finished without a single validated epoch (max_epochs must be >= 1)")
    net = module.net.to("cpu")
    net.load_state_dict(best.state)
    net.eval()
    return FitResult(net=net, history=list(module.history), best=best.best, network_params=net.hparams_dict)


def save_model(net: ScarNet, ckpt_path: str | Path, meta: dict | None = None) -> Path:
    """Plain state_dict to `ckpt_path` and the network's hyperparameters (+ meta) to `hparams.json` beside it."""
    ckpt_path = Path(ckpt_path)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, ckpt_path)
    hparams = {"network": net.hparams_dict, **(meta or {})}
    hp_path = ckpt_path.with_name("hparams.json")
    hp_path.write_text(json.dumps(_nan_to_none(hparams), indent=1, default=_json_default, allow_nan=False))
    return hp_path


def _nan_to_none(obj):
    """Strict JSON: an undefined metric (AUC of a one-class validation set) is written as null."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return str(obj)


def role_arrays(index: pd.DataFrame, store_root: str | Path) -> Arrays:
    """Images, masks and labels (patient `lge`) of the images in `index`, read from the store."""
    from cinescar.preprocessing.store import load_arrays

    images, masks = load_arrays(index, store_root)
    labels = index["lge"].astype(int).to_numpy().astype(np.float32)
    bad = ~np.isfinite(images).reshape(len(images), -1).all(axis=1) if len(images) else np.zeros(0, bool)
    if bad.any():
        row = index.iloc[int(np.argmax(bad))]
        raise CinescarError(f"preprocessed image {row['image_id']} (patient {row['patient_id']}, centre "
                            f"{row['center_slug']}) holds non-finite values; rerun preprocessing")
    return images, masks, labels


def merged_params(dl_cfg: dict, tuned: dict | None = None) -> dict:
    """Config `dl.network` + `dl.training.learning_rate`, overridden by the tuned values."""
    params = {**dl_cfg.get("network", {}), "learning_rate": dl_cfg.get("training", {}).get("learning_rate", 1e-4)}
    params.update(tuned or {})
    return params


def scar_positive_test(preds: pd.DataFrame, index: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` scar-positive internal-test images with the highest scar probability (Grad-CAM subjects).

    Scar-positive = image of an LGE+ patient that is a scar slice where the cohort reads slices, any
    slice of an LGE+ patient where it does not. Ties break by image_id so the choice is deterministic.
    """
    test = preds[(preds["split"] == "test") & (preds["lge"] == 1)]
    scar = index.set_index("image_id")["scar_slice"].reindex(test["image_id"])
    known = scar.notna().to_numpy()
    keep = ~known | scar.fillna(False).astype(bool).to_numpy()
    test = test[keep]
    return test.sort_values(["prob", "image_id"], ascending=[False, True], kind="mergesort").head(n)


def train_fold(
    index: pd.DataFrame,
    splits: dict,
    fold: int,
    store_root: str | Path,
    cfg: dict,
    tuned: dict | None,
    out_dir: str | Path,
    gradcam_dir: str | Path,
) -> dict:
    """The `dl_train` job: train fold `fold`, write model.ckpt, hparams.json, predictions, features, Grad-CAM.

    `cfg` is the whole configuration (section `dl`, `seed`, and `mlflow` for tracking); `tuned` the chosen
    hyperparameters (best_params.json's "params"). Only the fold's `train` images fit weights, `val` images
    choose the epoch; val_all, test and external images are only predicted.
    """
    from cinescar import tracking
    from cinescar.dl.gradcam import gradcam_maps, render_overlay
    from cinescar.preprocessing.splits import fold_images
    from cinescar.preprocessing.store import load_arrays

    dl_cfg = cfg["dl"]
    seed = int(cfg.get("seed", 0)) + int(fold)
    training = dl_cfg.get("training", {})
    out_dir, gradcam_dir = Path(out_dir), Path(gradcam_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    roles = fold_images(index, splits, fold)
    params = merged_params(dl_cfg, tuned)
    log.info("fold %d: %d training, %d validation images; params %s", fold, len(roles["train"]),
             len(roles["val"]), params)

    with tracking.start_run(cfg, f"dl-fold{fold}", {"stage": "dl", "model": "dl", "fold": fold}) as run:
        run.log_params({**{f"net.{k}": v for k, v in params.items()}, "seed": seed, "fold": fold,
                        "n_train": len(roles["train"]), "n_val": len(roles["val"]),
                        **{f"training.{k}": v for k, v in training.items()}})

        def to_mlflow(record: dict, trainer: pl.Trainer) -> None:
            run.log_metrics({k: v for k, v in record.items() if k != "epoch" and not _isnan(v)},
                            step=record["epoch"])

        result = fit_network(role_arrays(roles["train"], store_root), role_arrays(roles["val"], store_root),
                             params, training, dl_cfg.get("augmentation", {}), seed,
                             callbacks=[EpochCallback(to_mlflow)], root_dir=out_dir)
        device = resolve_device(str(training.get("accelerator", "auto")))
        net = result.net.to(device)

        # One inference pass over every image: DL features for all, probabilities for the prediction roles.
        probs, feats = predict_index(net, index, store_root, batch_size=int(dl_cfg.get("inference_batch_size", 64)),
                                     device=device)
        features_table(index["image_id"], feats).to_parquet(out_dir / "features.parquet", index=False)
        prob_of = pd.Series(probs, index=index["image_id"].to_numpy())
        parts = []
        for split in PREDICTION_SPLITS:
            sub = roles[split]
            parts.append(pd.DataFrame({
                "image_id": sub["image_id"].to_numpy(),
                "patient_id": sub["patient_id"].astype(str).to_numpy(),
                "fold": int(fold),
                "split": "val" if split == "val_all" else split,
                "dev_selected": sub["dev_selected"].astype(bool).to_numpy(),
                "lge": sub["lge"].astype(int).to_numpy(),
                "prob": prob_of.loc[sub["image_id"]].to_numpy(dtype=float),
            }))
        preds = pd.concat(parts, ignore_index=True)[PREDICTION_COLUMNS]
        preds.to_parquet(out_dir / "predictions.parquet", index=False)

        net = net.to("cpu")
        meta = {"fold": fold, "seed": seed, "params": params, "best": result.best, "history": result.history,
                "n_parameters": count_parameters(net)}
        hp_path = save_model(net, out_dir / "model.ckpt", meta)

        # Grad-CAM on the best scar-positive internal-test images.
        gc = dl_cfg.get("gradcam", {})
        chosen = scar_positive_test(preds, index, int(gc.get("n_images", 4)))
        pngs = []
        for stale in gradcam_dir.glob("*.png"):  # this job's own folder: no overlay of an earlier run survives
            stale.unlink()
        if len(chosen):
            sub = index.set_index("image_id").loc[chosen["image_id"]].reset_index()
            images, masks = load_arrays(sub, store_root)
            inputs = three_channels(images, masks)
            maps = gradcam_maps(net, inputs, gc.get("layer", "blocks.2.conv"))
            for (image_id, prob), x, heat in zip(chosen[["image_id", "prob"]].itertuples(index=False), inputs, maps):
                png = render_overlay(x[0], x[1], heat, gradcam_dir / f"{image_id}.png",
                                     title=f"{image_id}  P(scar)={prob:.2f}", alpha=float(gc.get("alpha", 0.4)))
                pngs.append(png.name)
        gradcam_dir.mkdir(parents=True, exist_ok=True)
        (gradcam_dir / "done.json").write_text(json.dumps({"fold": fold, "layer": gc.get("layer", "blocks.2.conv"),
                                                           "images": pngs}, indent=1))

        run.log_metrics({"best_epoch": result.best["epoch"], "best_val_acc": result.best["val_acc"],
                         "best_val_loss": result.best["val_loss"],
                         **({"best_val_auc": result.best["val_auc"]} if not _isnan(result.best["val_auc"]) else {})})
        run.set_tags({"best_epoch": result.best["epoch"]})
        for path in (out_dir / "model.ckpt", hp_path):
            run.log_artifact(path)
        for png in pngs:
            run.log_artifact(gradcam_dir / png, "gradcam")
    log.info("fold %d: best epoch %d (val acc %.3f, val loss %.4f); %d predictions, %d feature rows, %d Grad-CAM",
             fold, result.best["epoch"], result.best["val_acc"], result.best["val_loss"], len(preds), len(index),
             len(pngs))
    return {"best": result.best, "history": result.history, "n_predictions": len(preds), "gradcam": pngs}


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def train_fold_from_files(
    index_path: str | Path,
    splits_path: str | Path,
    store_root: str | Path,
    params_path: str | Path | None,
    cfg: dict,
    fold: int,
    out_dir: str | Path,
    gradcam_dir: str | Path,
    threads: int | None = None,
) -> dict:
    """`train_fold` from the workflow's files (index, splits, store, best_params.json)."""
    from cinescar.preprocessing.splits import load_splits
    from cinescar.preprocessing.store import load_index

    if threads:
        torch.set_num_threads(int(threads))
    tuned = json.loads(Path(params_path).read_text())["params"] if params_path else None
    return train_fold(load_index(index_path), load_splits(splits_path), int(fold), store_root, cfg, tuned,
                      out_dir, gradcam_dir)


def gather_predictions(paths: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate the folds' predictions into `results/dl/predictions.parquet`."""
    table = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    dup = table.duplicated(["fold", "image_id"])
    if dup.any():
        raise CinescarError(f"image {table.loc[dup, 'image_id'].iloc[0]} predicted twice in one fold")
    table = table.sort_values(["fold", "split", "image_id"], kind="mergesort").reset_index(drop=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    return table
