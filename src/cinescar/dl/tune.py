"""Hyperparameter tuning (paper: "selected using hyperband optimization"): Optuna TPE + HyperbandPruner.

Tuned: base width (channels per layer), learning rate, kernel size and dropout -- the four the paper names.
Each trial trains on one development fold's `train` images and is scored on that fold's `val` images by
`dl.tuning.metric` (default the image-level validation AUC, a metric that ranks: the paper's accuracy scores
a constant "no scar" network at the share of negatives, which made every trial tie); the epoch is the
Hyperband resource. Pruned trials are kept in the trial table with state PRUNED and the epochs they ran.
Internal-test and external images are never loaded here: `tune_from_files` reads only the tuning fold's
`train` and `val` rows of the store.

Deterministic: the TPE sampler is seeded and every trial trains with the same seed, so trials differ only
in their hyperparameters; the study lives in memory (one process, a few trials), nothing to clean up.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import optuna
import pandas as pd

from cinescar.config import schema_defaults, schema_section
from cinescar.dl.train import SELECTION_METRICS, Arrays, check_metric, fit_network, merged_params
from cinescar.errors import ConfigError

log = logging.getLogger(__name__)

TUNABLE = ("base_width", "learning_rate", "kernel_size", "dropout")
INTEGER = ("base_width", "kernel_size")
DIRECTIONS = SELECTION_METRICS


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """Draw one value per search-space entry: {"choices": [...]} or {"low", "high", "log"?, "step"?}."""
    out = {}
    for name, spec in space.items():
        if name not in TUNABLE:
            raise ConfigError(f"dl.tuning.search_space.{name}: not tunable (tunable: {', '.join(TUNABLE)})")
        if "choices" in spec:
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif "low" in spec and "high" in spec:
            if name in INTEGER:
                out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                              step=int(spec.get("step", 1)), log=bool(spec.get("log", False)))
            else:
                out[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                                log=bool(spec.get("log", False)), step=spec.get("step"))
        else:
            raise ConfigError(f"dl.tuning.search_space.{name}: give either 'choices' or 'low' and 'high'")
    return out


def subsample(arrays: Arrays, n: int | None, seed: int) -> Arrays:
    """At most `n` images (random, seeded, original order kept); all when n is None or larger."""
    images, masks, labels = arrays
    if n is None or n >= len(labels):
        return arrays
    keep = np.sort(np.random.default_rng(seed).choice(len(labels), size=int(n), replace=False))
    return images[keep], masks[keep], labels[keep]


class _Pruning(pl.Callback):
    """Reports the epoch's validation metric to Optuna; asks Lightning to stop when Hyperband prunes."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric, self.pruned = trial, metric, False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not pl_module.history:
            return
        value = pl_module.history[-1][self.metric]
        if math.isnan(value):
            return
        self.trial.report(value, step=pl_module.history[-1]["epoch"])
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


def tune(train: Arrays, val: Arrays, dl_cfg: dict, seed: int, log_fn=None,
         val_groups: np.ndarray | None = None) -> dict:
    """Run the Optuna study on one fold's train/val arrays; return the chosen params and the trial table.

    `dl_cfg` is config section `dl` (network/training defaults, augmentation, tuning). `log_fn(trial_record)`
    is called after each trial (MLflow). `val_groups`: the validation images' patients (for
    `val_patient_auc`; dropped when `max_val_images` subsamples the validation images). A tuning key left out
    takes the schema's default (`cinescar.config.schema_section`).
    """
    tcfg = schema_section(dl_cfg, "tuning", defaults=("dl", "tuning"))
    metric = str(tcfg["metric"])
    try:
        check_metric(metric, "dl.tuning.metric")
    except Exception as exc:
        raise ConfigError(str(exc)) from None
    max_epochs = int(tcfg["max_epochs"])
    # Inside a trial the Hyperband pruner stops bad trials; the tuned metric also picks the trial's epoch.
    # (fit_network fills the training keys the config leaves out from the schema)
    training = {**dl_cfg.get("training", {}), "max_epochs": max_epochs, "early_stopping_patience": 0,
                "selection_metric": metric}
    base = merged_params(dl_cfg)
    train = subsample(train, tcfg["max_train_images"], seed)
    if tcfg["max_val_images"] is not None and val_groups is not None:
        val_groups = subsample((val_groups, val_groups, val_groups), tcfg["max_val_images"], seed + 1)[0]
    val = subsample(val, tcfg["max_val_images"], seed + 1)
    space = tcfg["search_space"]

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **suggest(trial, space)}
        pruning = _Pruning(trial, metric)
        result = fit_network(train, val, params, training, dl_cfg.get("augmentation", {}), seed,
                             callbacks=[pruning], val_groups=val_groups)
        values = [r[metric] for r in result.history if not math.isnan(r[metric])]
        trial.set_user_attr("epochs", len(result.history))
        if pruning.pruned:
            raise optuna.TrialPruned()
        if not values:
            return math.nan
        return max(values) if DIRECTIONS[metric] == "maximize" else min(values)

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial replaces Optuna's
    sampler = optuna.samplers.TPESampler(seed=int(seed))
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1),
                                            reduction_factor=int(tcfg["reduction_factor"]))
    study = optuna.create_study(direction=DIRECTIONS[metric], sampler=sampler, pruner=pruner,
                                study_name="cinescar-dl")

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        record = _trial_record(trial)
        log.info("trial %d %s: %s = %s, params %s", trial.number, record["state"], metric, record["value"],
                 trial.params)
        if log_fn is not None:
            log_fn(record)

    study.optimize(objective, n_trials=int(tcfg["n_trials"]), callbacks=[after])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
                and not math.isnan(t.value)]
    if not complete:
        # Every trial pruned or undefined: fall back to the configured defaults, and say so.
        log.warning("no tuning trial completed with a %s; keeping the configured defaults", metric)
        chosen, best_value, best_trial = {k: base[k] for k in space}, None, None
    else:
        best = study.best_trial
        chosen, best_value, best_trial = dict(best.params), best.value, best.number
    return {
        "params": {**{k: base[k] for k in TUNABLE if k in base}, **chosen},
        "tuned": True,
        "metric": metric,
        "best_value": best_value,
        "best_trial": best_trial,
        "seed": int(seed),
        "n_trials": len(study.trials),
        "n_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "n_complete": len(complete),
        "max_epochs": max_epochs,
        "n_train_images": int(len(train[2])),
        "n_val_images": int(len(val[2])),
        "trials": [_trial_record(t) for t in study.trials],
    }


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict:
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": dict(trial.params),
            "epochs": trial.user_attrs.get("epochs")}


def tuning_images(index: pd.DataFrame, splits: dict, fold: int) -> dict[str, pd.DataFrame]:
    """The only images tuning may see: the tuning fold's development `train` and `val` images."""
    from cinescar.cohort.splits import fold_images

    roles = fold_images(index, splits, fold)
    return {"train": roles["train"], "val": roles["val"]}
