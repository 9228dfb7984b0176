"""One DL training job per fold: fit, keep the best epoch, predict, extract DL features, draw Grad-CAM.

`fit_network` is the reusable core (also used by tuning): Lightning with `accelerator="auto"` (GPU when
there is one, the CPU otherwise, no code change), `deterministic=True` and `seed_everything` so a fixed
seed gives identical weights on the CPU, no logger, no progress bar, no model summary and no checkpoint
files from Lightning (nothing lands in `lightning_logs/`).

Checkpoint choice and early stopping follow one selection metric (`dl.training.selection_metric`): by
default the image-level validation AUC, a metric that ranks. The paper keeps the epoch with the best
validation *accuracy*; on imbalanced folds a network that calls every image negative scores the share of
negatives there, so accuracy is available (`val_acc`) but never the default. Ties go to the lower validation
loss, then to the earlier epoch; an undefined metric (AUC of a one-class validation set) ranks last.
Lightning's `ModelCheckpoint` monitors one number only, so a small callback keeps the best weights in memory
and stops after `early_stopping_patience` epochs without a better one; they are saved as a plain
`state_dict` (loadable with `torch.load(weights_only=True)`) next to a JSON of the network's hyperparameters.

`dl.seeds` > 1 trains that many networks per fold (seeds seed+fold, +1000, +2000, ...) and averages their
probabilities; the first seed's network gives the DL features, the checkpoint and Grad-CAM.
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

from cinescar.config import schema_defaults, schema_section
from cinescar.dl.data import ScarDataModule
from cinescar.dl.features import features_table, predict_index
from cinescar.dl.inference import resolve_device, three_channels
from cinescar.dl.module import ScarModule, balanced_pos_weight
from cinescar.dl.network import ScarNet, count_parameters
from cinescar.errors import CinescarError
from cinescar.predictions import PREDICTION_COLUMNS, ROLE_TO_SPLIT, prediction_rows

log = logging.getLogger(__name__)

NETWORK_KEYS = ("base_width", "kernel_size", "dropout", "dense_activation")
SEED_STRIDE = 1000
"""Seed k of fold f trains with seed + f + 1000 k (seed 0 is the single-seed run's seed)."""

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(images (N,H,W), masks (N,H,W), labels (N,)) of one role."""


SELECTION_METRICS = {"val_auc": "maximize", "val_patient_auc": "maximize", "val_loss": "minimize",
                     "val_acc": "maximize"}
"""Metrics that may choose the checkpoint, stop training early and score a tuning trial (one home)."""

DEFAULT_SELECTION_METRIC = "val_auc"


def check_metric(metric: str, key: str = "dl.training.selection_metric") -> str:
    if metric not in SELECTION_METRICS:
        raise CinescarError(f"{key} must be one of {sorted(SELECTION_METRICS)}, got {metric!r}")
    return metric


def selection_key(record: dict, metric: str = DEFAULT_SELECTION_METRIC) -> tuple[float, float, int]:
    """Sort key, larger = better: the metric (oriented), then lower validation loss, then the earlier epoch.

    An undefined value (NaN: AUC of a one-class validation set) ranks below every defined one.
    """
    value = float(record.get(metric, math.nan))
    if math.isnan(value):
        primary = -math.inf
    else:
        primary = value if SELECTION_METRICS[metric] == "maximize" else -value
    loss = float(record.get("val_loss", math.nan))
    return primary, (-math.inf if math.isnan(loss) else -loss), -int(record["epoch"])


def better(a: dict, b: dict | None, metric: str = DEFAULT_SELECTION_METRIC) -> bool:
    """Is epoch record `a` a better checkpoint than `b` by `metric` (then lower val loss, then earlier)?"""
    return b is None or selection_key(a, metric) > selection_key(b, metric)


class BestWeights(pl.Callback):
    """Keeps (in memory) the weights of the best epoch by `better`; early stopping after `patience` epochs.

    Runs after each epoch's validation. Patience counts epochs whose selection metric did not beat the best
    one (the tie-breakers do not reset it); 0 = never stop early.
    """

    def __init__(self, metric: str = DEFAULT_SELECTION_METRIC, patience: int = 0) -> None:
        self.metric = check_metric(metric)
        self.patience = int(patience)
        self.best: dict | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.stopped_epoch: int | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: ScarModule) -> None:
        if not pl_module.history:
            return
        record = pl_module.history[-1]
        record["selection"] = record.get(self.metric, math.nan)
        improved = self.best is None or selection_key(record, self.metric)[0] > selection_key(self.best, self.metric)[0]
        if better(record, self.best, self.metric):
            self.best = dict(record)
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.net.state_dict().items()}
        self.since_best = 0 if improved else self.since_best + 1
        if self.patience > 0 and self.since_best >= self.patience:
            self.stopped_epoch = int(record["epoch"])
            trainer.should_stop = True


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
    selection_metric: str = DEFAULT_SELECTION_METRIC
    pos_weight: float | None = None
    stopped_epoch: int | None = None


def network_params(params: dict) -> dict:
    """The network's part of a parameter dict (config `dl.network` merged with tuned values)."""
    return {k: params[k] for k in NETWORK_KEYS if k in params}


def resolve_pos_weight(setting, labels: np.ndarray) -> float | None:
    """Config `dl.training.pos_weight`: "balanced" (negatives / positives of the training images), a number,
    or null / "none" (unweighted BCE, the paper's loss)."""
    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        return None
    if isinstance(setting, str):
        if setting.lower() != "balanced":
            raise CinescarError(f"dl.training.pos_weight must be 'balanced', 'none' or a number, got {setting!r}")
        return balanced_pos_weight(labels)
    if float(setting) <= 0:
        raise CinescarError(f"dl.training.pos_weight must be > 0, got {setting}")
    return float(setting)


def fit_network(
    train: Arrays,
    val: Arrays,
    params: dict,
    training: dict,
    augmentation: dict,
    seed: int,
    callbacks: Sequence[pl.Callback] = (),
    root_dir: str | Path | None = None,
    val_groups: np.ndarray | None = None,
) -> FitResult:
    """Train a ScarNet on `train`, validate on `val` every epoch, return the best epoch's network.

    `params`: network keys (base_width, kernel_size, dropout, dense_activation) and learning_rate.
    `training`: config `dl.training` (batch_size, max_epochs, num_workers, accelerator, devices, precision,
    deterministic, weight_decay, early_stopping_patience, selection_metric, pos_weight).
    `val_groups`: patient of each validation image (enables the patient-level AUC `val_patient_auc`).
    A training key left out takes the schema's default (`cinescar.config.schema_section`).
    """
    training = schema_section(training, defaults=("dl", "training"))
    metric = check_metric(str(training["selection_metric"]))
    if metric == "val_patient_auc" and val_groups is None:
        raise CinescarError("selection metric val_patient_auc needs the validation images' patients")
    pos_weight = resolve_pos_weight(training["pos_weight"], train[2])
    pl.seed_everything(int(seed), workers=True, verbose=False)
    datamodule = ScarDataModule(
        train, val,
        batch_size=int(training["batch_size"]),
        num_workers=int(training["num_workers"]),
        seed=int(seed),
        augmentation=augmentation,
    )
    module = ScarModule(
        network=network_params(params),
        learning_rate=float(params.get("learning_rate", training["learning_rate"])),
        weight_decay=float(training["weight_decay"]),
        pos_weight=pos_weight,
        val_groups=val_groups,
    )
    best = BestWeights(metric, int(training["early_stopping_patience"] or 0))
    all_callbacks: list[pl.Callback] = [best, *callbacks]
    with quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=int(training["max_epochs"]),
            accelerator=str(training["accelerator"]),
            devices=training["devices"],
            precision=training["precision"],
            deterministic=training["deterministic"],
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
    return FitResult(net=net, history=list(module.history), best=best.best, network_params=net.hparams_dict,
                     selection_metric=metric, pos_weight=pos_weight, stopped_epoch=best.stopped_epoch)


def save_model(net: ScarNet, ckpt_path: str | Path, meta: dict | None = None,
               hparams_path: str | Path | None = None) -> Path:
    """Plain state_dict to `ckpt_path` and the network's hyperparameters (+ meta) to `hparams_path` (default
    `hparams.json` beside it, the name `dl.inference.load_model` looks for)."""
    ckpt_path = Path(ckpt_path)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, ckpt_path)
    hparams = {"network": net.hparams_dict, **(meta or {})}
    hp_path = Path(hparams_path) if hparams_path else ckpt_path.with_name("hparams.json")
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
    """Config `dl.network` + `dl.training.learning_rate` (the schema's defaults for keys left out), overridden by
    the tuned values."""
    params = {**schema_section(dl_cfg, "network", defaults=("dl", "network")),
              "learning_rate": schema_section(dl_cfg, "training", defaults=("dl", "training"))["learning_rate"]}
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


@dataclass
class FoldTraining:
    """What training one fold produced, before anything is written: the job layer (`cinescar.dl.run`) writes
    it under the rule's output names and logs it to MLflow."""

    fold: int
    seed: int
    seeds: list[int]
    params: dict
    training: dict
    metric: str
    result: FitResult
    """The first seed's fit (its network gives the features, the checkpoint and Grad-CAM)."""
    results: list[FitResult]
    features: pd.DataFrame
    predictions: pd.DataFrame
    curve: pd.DataFrame
    meta: dict
    n_train: int
    n_val: int


def train_fold(
    index: pd.DataFrame,
    splits: dict,
    fold: int,
    store_root: str | Path,
    cfg: dict,
    tuned: dict | None,
    *,
    root_dir: str | Path | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> FoldTraining:
    """Train fold `fold`: fit (one network per seed), keep the best epoch, predict and extract DL features.

    `cfg` holds what training reads (section `dl`, `seed`: the rule's params); `tuned` the chosen
    hyperparameters (best_params.json's "params"). Only the fold's `train` images fit weights, `val` images
    choose the epoch; val_all, test and external images are only predicted. `on_epoch(seed_number, record)`
    sees every epoch's metrics (the job layer logs them to MLflow); `root_dir` is Lightning's root folder.
    """
    from cinescar.cohort.splits import fold_images

    dl_cfg = schema_section(cfg, "dl")  # top-level dl keys (seeds, inference_batch_size) the config leaves out
    seed = int(cfg.get("seed", schema_defaults()["seed"])) + int(fold)
    n_seeds = int(dl_cfg["seeds"])
    if n_seeds < 1:
        raise CinescarError(f"dl.seeds must be >= 1, got {n_seeds}")
    seeds = [seed + SEED_STRIDE * s for s in range(n_seeds)]
    training = schema_section(dl_cfg, "training", defaults=("dl", "training"))
    roles = fold_images(index, splits, fold)
    params = merged_params(dl_cfg, tuned)
    log.info("fold %d: %d training, %d validation images; %d seed(s); params %s", fold, len(roles["train"]),
             len(roles["val"]), n_seeds, params)
    train_arrays = role_arrays(roles["train"], store_root)
    val_arrays = role_arrays(roles["val"], store_root)
    val_groups = roles["val"]["patient_id"].astype(str).to_numpy()
    metric = check_metric(str(training["selection_metric"]))

    device = resolve_device(str(training["accelerator"]))
    batch = int(dl_cfg["inference_batch_size"])
    results, prob_runs = [], []
    for k, s in enumerate(seeds):
        def epoch_end(record: dict, trainer: pl.Trainer, k: int = k) -> None:
            if on_epoch is not None:
                on_epoch(k, record)

        result = fit_network(train_arrays, val_arrays, params, training, dl_cfg.get("augmentation", {}), s,
                             callbacks=[EpochCallback(epoch_end)], root_dir=root_dir, val_groups=val_groups)
        net = result.net.to(device)
        # One inference pass over every image: probabilities for the prediction roles, and (first seed)
        # the DL features for all.
        probs, feats = predict_index(net, index, store_root, batch_size=batch, device=device)
        if k == 0:
            first, first_feats = result, feats
        else:
            result.net = None  # only the first seed's network is kept
        results.append(result)
        prob_runs.append(probs)
        log.info("fold %d seed %d: best epoch %d (%s %.4f), %d epochs run", fold, s, result.best["epoch"],
                 metric, result.best.get(metric, math.nan), len(result.history))
    result = first
    result.net = result.net.to(device)
    probs = np.mean(np.stack(prob_runs), axis=0)  # the seeds' average probability per image
    features = features_table(index["image_id"], first_feats)
    prob_of = pd.Series(probs, index=index["image_id"].to_numpy())
    parts = []
    for role, split in ROLE_TO_SPLIT.items():
        sub = roles[role]
        parts.append(prediction_rows(sub, fold, split, prob_of.loc[sub["image_id"]].to_numpy(dtype=float)))
    preds = pd.concat(parts, ignore_index=True)[PREDICTION_COLUMNS]
    curve = selection_curve(results, seeds, metric)
    result.net = result.net.to("cpu")
    meta = {"fold": fold, "seed": seed, "seeds": seeds, "params": params, "selection_metric": metric,
            "pos_weight": result.pos_weight, "best": result.best, "history": result.history,
            "stopped_epoch": result.stopped_epoch,
            "per_seed": [{"seed": s, "best": r.best, "stopped_epoch": r.stopped_epoch,
                          "epochs_run": len(r.history)} for s, r in zip(seeds, results)],
            "n_parameters": count_parameters(result.net)}
    return FoldTraining(fold=fold, seed=seed, seeds=seeds, params=params, training=training, metric=metric,
                        result=result, results=results, features=features, predictions=preds, curve=curve,
                        meta=meta, n_train=len(roles["train"]), n_val=len(roles["val"]))


def gradcam_examples(net: ScarNet, preds: pd.DataFrame, index: pd.DataFrame, store_root: str | Path,
                     gc: dict) -> list[tuple[str, float, np.ndarray, np.ndarray]]:  # fmt: skip
    """(image_id, probability, 3-channel input, Grad-CAM map) of the best scar-positive internal-test images
    (`dl.gradcam.n_images` of them); the job layer renders them."""
    from cinescar.dl.gradcam import gradcam_maps
    from cinescar.preprocessing.store import load_arrays

    chosen = scar_positive_test(preds, index, int(gc["n_images"]))
    if not len(chosen):
        return []
    sub = index.set_index("image_id").loc[chosen["image_id"]].reset_index()
    images, masks = load_arrays(sub, store_root)
    inputs = three_channels(images, masks)
    maps = gradcam_maps(net, inputs, gc["layer"])
    return [(str(image_id), float(prob), x, heat)
            for (image_id, prob), x, heat in zip(chosen[["image_id", "prob"]].itertuples(index=False), inputs, maps)]


def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


CURVE_COLUMNS = ["seed", "epoch", "selection_metric", "selection", "train_loss", "val_loss", "val_acc", "val_auc",
                 "val_patient_auc", "best"]


def selection_curve(results: Sequence[FitResult], seeds: Sequence[int], metric: str) -> pd.DataFrame:
    """One row per (seed, epoch): the selection metric's curve and the other metrics; `best` marks the chosen epoch."""
    rows = []
    for s, r in zip(seeds, results):
        for rec in r.history:
            rows.append({"seed": int(s), "epoch": int(rec["epoch"]), "selection_metric": metric,
                         "selection": rec.get(metric, math.nan),
                         **{k: rec.get(k, math.nan) for k in CURVE_COLUMNS[4:-1]},
                         "best": int(rec["epoch"]) == int(r.best["epoch"])})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def patient_table(preds: pd.DataFrame) -> pd.DataFrame:
    """One row per (fold, split, patient): label and patient probability = max over its images (screening rule)."""
    from cinescar.screening_rule import PATIENT_AGGREGATE

    return (preds.groupby(["fold", "split", "patient_id"], sort=True)
            .agg(lge=("lge", "max"), prob=("prob", PATIENT_AGGREGATE)).reset_index())


SPREAD_COLUMNS = ["fold", "split", "n_patients", "n_positive", "patient_auc", "image_auc"]


def fold_spread(preds: pd.DataFrame) -> pd.DataFrame:
    """The DL's fold-to-fold spread: per fold and split, the patient AUC (max rule) and image AUC; then for
    each split the mean and SD over folds, and for `val` the pooled out-of-fold patient AUC (fold "pooled").

    Validation rows use every validation image (`val_all`); a split whose patients hold one class gets NaN.
    """
    from cinescar.dl.module import epoch_auc

    rows = []
    patients = patient_table(preds)
    for (fold, split), part in patients.groupby(["fold", "split"], sort=True):
        imgs = preds[(preds["fold"] == fold) & (preds["split"] == split)]
        rows.append({"fold": str(fold), "split": split, "n_patients": len(part), "n_positive": int(part["lge"].sum()),
                     "patient_auc": epoch_auc(part["lge"].to_numpy(), part["prob"].to_numpy()),
                     "image_auc": epoch_auc(imgs["lge"].to_numpy(), imgs["prob"].to_numpy())})
    table = pd.DataFrame(rows, columns=SPREAD_COLUMNS)
    summary = []
    for split, part in table.groupby("split", sort=True):
        for stat in ("mean", "sd"):
            fn = (lambda c: part[c].mean()) if stat == "mean" else (lambda c: part[c].std(ddof=1))
            summary.append({"fold": stat, "split": split, "n_patients": int(part["n_patients"].sum()),
                            "n_positive": int(part["n_positive"].sum()),
                            "patient_auc": fn("patient_auc"), "image_auc": fn("image_auc")})
    oof = patients[patients["split"] == "val"]
    if len(oof):
        oof_imgs = preds[preds["split"] == "val"]
        summary.append({"fold": "pooled", "split": "val", "n_patients": len(oof), "n_positive": int(oof["lge"].sum()),
                        "patient_auc": epoch_auc(oof["lge"].to_numpy(), oof["prob"].to_numpy()),
                        "image_auc": epoch_auc(oof_imgs["lge"].to_numpy(), oof_imgs["prob"].to_numpy())})
    return pd.concat([table, pd.DataFrame(summary, columns=SPREAD_COLUMNS)], ignore_index=True)


def gather_predictions(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The folds' predictions as one table (`results/dl/predictions.parquet`), in (fold, split, image) order."""
    table = pd.concat(list(tables), ignore_index=True)
    dup = table.duplicated(["fold", "image_id"])
    if dup.any():
        raise CinescarError(f"image {table.loc[dup, 'image_id'].iloc[0]} predicted twice in one fold")
    return table.sort_values(["fold", "split", "image_id"], kind="mergesort").reset_index(drop=True)
