"""Files in, files out, MLflow on the side: the Radiomics stage as the workflow runs it.

`run_fold` fits one fold for every candidate k and writes its outputs; `choose` picks k over all folds and
writes the stage's predictions in the shape every model shares (docs/architecture.md, "Predictions").
The model maths lives in `cinescar.radiomics.model`; this module only reads, writes and logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import joblib
import pandas as pd

from cinescar import tracking
from cinescar.errors import CinescarError
from cinescar.predictions import PREDICTION_COLUMNS
from cinescar.cohort.splits import load_splits
from cinescar.radiomics.model import (
    FoldResult,
    RadiomicsModel,
    RadiomicsSettings,
    choose_k,
    cv_table,
    fit_fold,
    recurrence,
)

log = logging.getLogger(__name__)
TAGS = {"stage": "radiomics", "model": "radiomics"}


def write_fold(result: FoldResult, scores_out: str | Path, predictions_out: str | Path, model_out: str | Path,
               selected_out: str | Path, settings: RadiomicsSettings) -> None:
    """scores.json, predictions_by_k.parquet, model.joblib ({k: RadiomicsModel} + metadata), selected.csv."""
    for path in (scores_out, predictions_out, model_out, selected_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(scores_out).write_text(json.dumps(result.scores, indent=1))
    result.predictions_by_k.to_parquet(predictions_out, index=False)
    joblib.dump({"fold": result.fold, "models": result.models, "settings": settings}, model_out)
    result.selected.to_csv(selected_out, index=False)


def run_fold(features_path: str | Path, index_path: str | Path, splits_path: str | Path, fold: int, cfg: dict,
             scores_out: str | Path, predictions_out: str | Path, model_out: str | Path,
             selected_out: str | Path) -> FoldResult:
    """Fit fold `fold`, write its files, log params/metrics/selected features/artifacts to MLflow.

    `cfg` holds the sections the fit reads (`radiomics`, `seed`: the rule's params, so that changing them
    reruns the fold); the MLflow run nests under the workflow's parent run (tracking set up by the job's script).
    """
    settings = RadiomicsSettings.from_config(cfg)
    features = pd.read_parquet(features_path)
    index = pd.read_parquet(index_path)
    splits = load_splits(splits_path)
    with tracking.start_run(f"radiomics-fold{fold}", {**TAGS, "fold": int(fold)}) as run:
        result = fit_fold(features, index, splits, int(fold), settings)
        write_fold(result, scores_out, predictions_out, model_out, selected_out, settings)
        params_file = cfg.get("radiomics", {}).get("params", "config/radiomics.yaml")
        run.log_params({"k_candidates": list(settings.k_candidates), "C": settings.C, "solver": settings.solver,
                        "failure_policy": settings.failure_policy, "inner_folds": settings.inner_folds,
                        "seed": settings.seed, "params_file": params_file,
                        "n_features": features.shape[1] - 1, "n_train": result.scores["n_train"],
                        "n_val": result.scores["n_val"]})
        run.log_metrics({f"val_auc_k{k}": v["val_auc"] for k, v in result.scores["k"].items()})
        run.log_dict({str(k): m.selected for k, m in result.models.items()}, "selected_features.json")
        for path in (scores_out, selected_out, model_out):
            run.log_artifact(path)
        if Path(params_file).is_file():
            run.log_artifact(params_file)
    return result


def load_model(path: str | Path, k: int | None = None, chosen_k_path: str | Path | None = None) -> RadiomicsModel:
    """The fitted model of one fold for k (default: the k in `chosen_k.json`, or the only one saved)."""
    saved = joblib.load(path)
    models: dict[int, RadiomicsModel] = saved["models"]
    if k is None and chosen_k_path is not None:
        k = int(json.loads(Path(chosen_k_path).read_text())["k"])
    if k is None:
        if len(models) != 1:
            raise CinescarError(f"{path} holds models for k in {sorted(models)}: say which k (or pass chosen_k.json)")
        k = next(iter(models))
    if int(k) not in models:
        raise CinescarError(f"{path} holds no model for k={k} (has {sorted(models)})")
    return models[int(k)]


def choose(score_paths: Sequence[str | Path], prediction_paths: Sequence[str | Path],
           selected_paths: Sequence[str | Path], chosen_out: str | Path, predictions_out: str | Path,
           selected_out: str | Path, cv_scores_out: str | Path, recurrence_out: str | Path) -> int:
    """Choose k by mean validation AUC over folds and write the stage's final tables.

    The choice reads no config.
    """
    scores = [json.loads(Path(p).read_text()) for p in score_paths]
    cv = cv_table(scores)
    k = choose_k(cv)
    means = cv.groupby("k")["val_auc"].agg(["mean", "std"])
    preds = pd.concat([pd.read_parquet(p) for p in prediction_paths], ignore_index=True)
    chosen = preds[preds["k"] == k][PREDICTION_COLUMNS].sort_values(["fold", "split", "image_id"])
    selected = pd.concat([pd.read_csv(p) for p in selected_paths], ignore_index=True).sort_values(
        ["k", "fold", "rank"])
    rec = recurrence(selected, k)
    for path in (chosen_out, predictions_out, selected_out, cv_scores_out, recurrence_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(chosen_out).write_text(json.dumps({
        "k": k, "criterion": "mean validation AUC (image level) over folds; ties -> smaller k",
        "mean_val_auc": {str(i): float(r["mean"]) for i, r in means.iterrows()},
        "std_val_auc": {str(i): float(r["std"]) for i, r in means.iterrows()}}, indent=1))
    chosen.to_parquet(predictions_out, index=False)
    selected.to_csv(selected_out, index=False)
    cv.to_csv(cv_scores_out, index=False)
    rec.to_csv(recurrence_out, index=False)
    log.info("radiomics: chose k=%d (mean validation AUC %s)", k, means["mean"].round(3).to_dict())
    with tracking.start_run("radiomics-choose", TAGS) as run:
        run.log_params({"chosen_k": k})
        run.log_metrics({f"mean_val_auc_k{i}": float(r["mean"]) for i, r in means.iterrows()})
        for path in (chosen_out, cv_scores_out, selected_out, recurrence_out):
            run.log_artifact(path)
    return k
