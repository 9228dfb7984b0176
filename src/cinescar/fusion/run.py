"""Files in, files out, MLflow on the side: the fusion stage as the workflow runs it.

`run_fold` fits every (k, classifier) of one fold and writes `scores.json`, `predictions_by_config.parquet`
and `model.joblib` (all fitted configurations: which one is *the* DL-Radiomics model is only known once every
fold has been scored). `choose` picks k and the classifier over all folds and writes `choice.json`,
`classifiers.csv` (the paper's Table S1), `selected_features.csv` and the stage's `predictions.parquet` in the
shape every model shares (docs/architecture.md, "Predictions"). `load_model` returns the chosen model of a fold.
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
from cinescar.fusion.model import (
    CLASSIFIER_LABELS,
    FusionFoldResult,
    FusionModel,
    FusionSettings,
    choose_configuration,
    fit_fold,
    fuse_features,
    score_table,
)
from cinescar.predictions import PREDICTION_COLUMNS
from cinescar.cohort.splits import load_splits

log = logging.getLogger(__name__)
TAGS = {"stage": "fusion", "model": "fusion"}


def write_fold(result: FusionFoldResult, scores_out: str | Path, predictions_out: str | Path,
               model_out: str | Path, settings: FusionSettings) -> None:  # fmt: skip
    for path in (scores_out, predictions_out, model_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(scores_out).write_text(json.dumps(result.scores, indent=1))
    result.predictions_by_config.to_parquet(predictions_out, index=False)
    # compress: forests of every k are kept until the choice is made; compression keeps the file small
    joblib.dump({"fold": result.fold, "models": result.models, "settings": settings}, model_out, compress=3)


def run_fold(radiomics_path: str | Path, dl_path: str | Path, index_path: str | Path, splits_path: str | Path,
             fold: int, cfg: dict, scores_out: str | Path, predictions_out: str | Path, model_out: str | Path,
             threads: int = 1) -> FusionFoldResult:
    """Fit fold `fold` of the DL-Radiomics model for every (k, classifier); write and log its files.

    `cfg` holds the sections the fit reads (`fusion`, `radiomics`, `seed`: the rule's params).
    """
    settings = FusionSettings.from_config(cfg, threads=threads)
    features = fuse_features(pd.read_parquet(radiomics_path), pd.read_parquet(dl_path), str(radiomics_path),
                             str(dl_path))
    index = pd.read_parquet(index_path)
    splits = load_splits(splits_path)
    with tracking.start_run(f"fusion-fold{fold}", {**TAGS, "fold": int(fold)}) as run:
        result = fit_fold(features, index, splits, int(fold), settings, source=f"{radiomics_path} + {dl_path}")
        write_fold(result, scores_out, predictions_out, model_out, settings)
        run.log_params({"k_candidates": list(settings.k_candidates), "classifiers": list(settings.classifiers),
                        "k_classifier": settings.k_classifier, "seed": settings.seed,
                        "n_radiomics_features": result.scores["n_features"]["radiomics"],
                        "n_dl_features": result.scores["n_features"]["dl"], "n_train": result.scores["n_train"],
                        "n_val": result.scores["n_val"], "failure_policy": settings.lasso.failure_policy})
        run.log_metrics({f"val_auc_k{r['k']}_{r['classifier']}": r["val_auc"] for r in result.scores["scores"]})
        run.log_dict(result.scores["selected"], "selected_features.json")
        run.log_artifact(scores_out)
    return result


def load_model(path: str | Path, choice_path: str | Path | None = None, k: int | None = None,
               classifier: str | None = None) -> FusionModel:  # fmt: skip
    """The fitted model of one fold: the chosen configuration (`choice.json`) or an explicit (k, classifier)."""
    saved = joblib.load(path)
    models: dict[tuple[int, str], FusionModel] = saved["models"]
    if choice_path is not None:
        choice = json.loads(Path(choice_path).read_text())
        k, classifier = int(choice["k"]), str(choice["classifier"])
    if k is None or classifier is None:
        raise CinescarError(f"{path} holds {len(models)} configurations: pass choice.json or k and classifier")
    if (int(k), classifier) not in models:
        raise CinescarError(f"{path} holds no model for k={k}, classifier={classifier}")
    return models[(int(k), classifier)]


def choose(score_paths: Sequence[str | Path], prediction_paths: Sequence[str | Path], cfg: dict,
           choice_out: str | Path, classifiers_out: str | Path, predictions_out: str | Path,
           selected_out: str | Path) -> dict:
    """Choose (k, classifier) over all folds; write choice.json, Table S1, selected features, predictions.

    `cfg` holds the `fusion` section (the rule's params).
    """
    settings = FusionSettings.from_config(cfg)
    fold_scores = [json.loads(Path(p).read_text()) for p in score_paths]
    scores = score_table(fold_scores)
    result = choose_configuration(scores, settings)
    k, clf = result["k"], result["classifier"]
    preds = pd.concat([pd.read_parquet(p) for p in prediction_paths], ignore_index=True)
    chosen = preds[(preds["k"] == k) & (preds["classifier"] == clf)][PREDICTION_COLUMNS]
    chosen = chosen.sort_values(["fold", "split", "image_id"]).reset_index(drop=True)
    if chosen.empty:
        raise CinescarError(f"no predictions for k={k}, classifier={clf} in {list(map(str, prediction_paths))}")
    selected = pd.DataFrame([{"fold": int(s["fold"]), "k": int(kk), **row}
                             for s in fold_scores for kk, rows in s["selected"].items() for row in rows])
    selected = selected.sort_values(["k", "fold", "rank"]).reset_index(drop=True)
    for path in (choice_out, classifiers_out, predictions_out, selected_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    ct = result["classifier_table"]
    choice = {
        "k": k, "classifier": clf, "classifier_label": CLASSIFIER_LABELS[clf],
        "criterion": (f"k: highest mean validation AUC (image level) over folds of {settings.k_classifier}, ties -> "
                      "smaller k; classifier at that k: highest mean validation AUC, ties -> lowest SD"),
        "k_mean_val_auc": {str(int(r.k)): float(r.mean) for r in result["k_table"].itertuples()},
        "k_sd_val_auc": {str(int(r.k)): float(r.sd) for r in result["k_table"].itertuples()},
        "classifier_mean_val_auc": dict(zip(ct["classifier"], ct["mean"].astype(float), strict=True)),
        "classifier_sd_val_auc": dict(zip(ct["classifier"], ct["sd"].astype(float), strict=True)),
        "folds": sorted(int(s["fold"]) for s in fold_scores),
    }
    Path(choice_out).write_text(json.dumps(choice, indent=1))
    ct.to_csv(classifiers_out, index=False, float_format="%.6g")
    chosen.to_parquet(predictions_out, index=False)
    selected.to_csv(selected_out, index=False)
    log.info("fusion: chose k=%d, classifier=%s (mean validation AUC %.3f)", k, clf,
             choice["classifier_mean_val_auc"][clf])
    with tracking.start_run("fusion-choose", TAGS) as run:
        run.log_params({"chosen_k": k, "chosen_classifier": clf})
        run.log_metrics({f"mean_val_auc_k{kk}": v for kk, v in choice["k_mean_val_auc"].items()}
                        | {f"mean_val_auc_{c}": v for c, v in choice["classifier_mean_val_auc"].items()}
                        | {f"sd_val_auc_{c}": v for c, v in choice["classifier_sd_val_auc"].items()})
        for path in (choice_out, classifiers_out, selected_out):
            run.log_artifact(path)
    return choice
