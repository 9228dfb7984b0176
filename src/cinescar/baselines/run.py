"""Files in, files out, MLflow on the side: the baseline and control models as the workflow runs them.

Each function writes, under `results/baselines/{model}/`: `predictions.parquet` (the shared contract,
docs/architecture.md "Predictions"), `status.json` (available or not, and why, in one sentence; variables;
per-fold validation AUC and coefficients) and `model.joblib` (the fitted model of every fold). A model that
cannot be fitted on this cohort (no clinical columns) writes an empty predictions table and says so in
`status.json`; the evaluation then reports the sentence instead of the model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import pandas as pd

from cinescar import tracking
from cinescar.baselines import clinical, combined, controls
from cinescar.models import CLINICAL, COMBINED, MODEL_LABELS
from cinescar.predictions import auc_or_nan, patient_probabilities
from cinescar.cohort.splits import load_splits
from cinescar.radiomics.model import RadiomicsSettings

log = logging.getLogger(__name__)


def _write(predictions: pd.DataFrame, status: dict, models: object, predictions_out: str | Path,
           status_out: str | Path, model_out: str | Path) -> None:  # fmt: skip
    for path in (predictions_out, status_out, model_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(predictions_out, index=False)
    Path(status_out).write_text(json.dumps(status, indent=1, default=float))
    joblib.dump(models, model_out)


def _val_auc(patient_probs: pd.DataFrame, lge: pd.Series) -> float:
    val = patient_probs[patient_probs["split"] == "val"]
    return auc_or_nan(lge.loc[val["patient_id"]].to_numpy(dtype=int), val["prob"].to_numpy())


def _log(model: str, status: dict, files: list[str | Path]) -> None:
    with tracking.start_run(f"baselines-{model}", {"stage": "baselines", "model": model}) as run:
        run.log_params({"available": status["available"], "variables": status.get("variables", []),
                        **{k: v for k, v in status.get("settings", {}).items()}})
        run.log_metrics({f"fold{f}.val_auc": v["val_auc"] for f, v in status.get("folds", {}).items()
                         if v.get("val_auc") == v.get("val_auc")})
        for path in files:
            run.log_artifact(path)


def _settings_dict(s: clinical.ClinicalSettings) -> dict:
    return {"C": s.C, "class_weight": s.class_weight, "max_iter": s.max_iter, "seed": s.seed}


def run_clinical(manifest_path: str | Path, index_path: str | Path, splits_path: str | Path, cfg: dict,
                 predictions_out: str | Path, status_out: str | Path, model_out: str | Path) -> dict:  # fmt: skip
    """The clinical model of every fold (cinescar.baselines.clinical)."""
    from cinescar.cohort.contract import read_manifest

    settings = clinical.ClinicalSettings.from_config(cfg)
    splits = load_splits(splits_path)
    index = pd.read_parquet(index_path)
    data = clinical.clinical_data(read_manifest(Path(manifest_path).parent), splits, settings)
    status = {"model": CLINICAL, "label": MODEL_LABELS[CLINICAL],
              "available": data.available, "note": data.note, "variables": data.variables, "absent": data.absent,
              "settings": _settings_dict(settings), "folds": {}}  # fmt: skip
    frames, models = [], {}
    if data.available:
        for f in splits["folds"]:
            fold = int(f["fold"])
            model, probs = clinical.fit_fold(data, splits, fold, settings)
            models[fold] = model
            frames.append(clinical.to_image_rows(probs, index, splits, fold))
            status["folds"][str(fold)] = {"val_auc": _val_auc(probs, data.lge),
                                          "coefficients": clinical.coefficients(model, list(data.X.columns))}
            log.info("clinical fold %d: validation AUC %.3f", fold, status["folds"][str(fold)]["val_auc"])
    else:
        log.warning("%s", data.note)
    preds = pd.concat(frames, ignore_index=True) if frames else clinical.empty_predictions()
    _write(preds, status, {"models": models, "variables": data.variables, "columns": list(data.X.columns)},
           predictions_out, status_out, model_out)
    _log(CLINICAL, status, [status_out])
    return status


def run_combined(image_model: str, image_predictions: str | Path, manifest_path: str | Path, index_path: str | Path,
                 splits_path: str | Path, cfg: dict, predictions_out: str | Path, status_out: str | Path,
                 model_out: str | Path) -> dict:  # fmt: skip
    """The combined (image probability + clinical variables) model of `image_model`, every fold, out of fold."""
    from cinescar.cohort.contract import read_manifest

    name = COMBINED[image_model]
    settings = clinical.ClinicalSettings.from_config(cfg)
    splits = load_splits(splits_path)
    index = pd.read_parquet(index_path)
    data = clinical.clinical_data(read_manifest(Path(manifest_path).parent), splits, settings)
    image = pd.read_parquet(image_predictions)
    image = image.assign(image_id=image["image_id"].astype(str), patient_id=image["patient_id"].astype(str),
                         fold=image["fold"].astype(int))
    patients = patient_probabilities(image, source=image_predictions)
    note = (f"{MODEL_LABELS[name]}: {MODEL_LABELS[image_model]} patient probability (logit, out of fold for "
            f"training patients) + {', '.join(data.variables)}." if data.available else
            f"No {MODEL_LABELS[name]} model: {data.note}")  # fmt: skip
    status = {"model": name, "label": MODEL_LABELS[name], "image_model": image_model, "available": data.available,
              "note": note, "variables": [*data.variables, combined.IMAGE_COLUMN], "absent": data.absent,
              "settings": _settings_dict(settings), "folds": {}}  # fmt: skip
    frames, models, stacks = [], {}, []
    if data.available:
        for f in splits["folds"]:
            fold = int(f["fold"])
            model, probs, stack = combined.fit_fold(data, patients, splits, fold, settings)
            models[fold] = model
            stacks.append(stack.assign(fold=fold))
            frames.append(clinical.to_image_rows(probs, index, splits, fold))
            cols = [*data.X.columns, combined.IMAGE_COLUMN]
            status["folds"][str(fold)] = {"val_auc": _val_auc(probs, data.lge),
                                          "coefficients": clinical.coefficients(model, cols)}
            log.info("%s fold %d: validation AUC %.3f", name, fold, status["folds"][str(fold)]["val_auc"])
    else:
        log.warning("%s", note)
    preds = pd.concat(frames, ignore_index=True) if frames else clinical.empty_predictions()
    _write(preds, status, {"models": models, "stacking": pd.concat(stacks, ignore_index=True) if stacks else None},
           predictions_out, status_out, model_out)
    _log(name, status, [status_out])
    return status


def run_control(kind: str, index_path: str | Path, splits_path: str | Path, cfg: dict,
                predictions_out: str | Path, status_out: str | Path, model_out: str | Path,
                features_path: str | Path | None = None) -> dict:  # fmt: skip
    """A shortcut control: `shape_control` (needs `features_path`) or `slice_control`."""
    splits = load_splits(splits_path)
    index = pd.read_parquet(index_path)
    if kind == "shape_control":
        features = controls.shape_features(pd.read_parquet(features_path))
    elif kind == "slice_control":
        features = controls.slice_features(index)
    else:
        raise ValueError(f"unknown control {kind!r}")
    settings = RadiomicsSettings.from_config(cfg)
    preds, choice, results = controls.fit_control(features, index, splits, settings)
    k = str(choice["k"])
    status = {"model": kind, "label": MODEL_LABELS[kind], "available": True,
              "note": f"{MODEL_LABELS[kind]}: {choice['n_features']} feature(s), k = {choice['k']}.",
              "variables": choice["features"], "choice": choice,
              "settings": {"k_candidates": list(controls.control_settings(settings, choice["n_features"]).k_candidates)},
              "folds": {str(r.fold): {"val_auc": r.scores["k"][k]["val_auc"],
                                      "coefficients": r.models[int(k)].coefficients.to_dict()}
                        for r in results}}  # fmt: skip
    _write(preds, status, {r.fold: r.models[int(k)] for r in results}, predictions_out, status_out, model_out)
    _log(kind, status, [status_out])
    return status
