"""Shortcut controls: models that *should not* detect scar, trained exactly like the Radiomics model.

If one of them comes close to an image model, that image model may be reading the shortcut rather than the
myocardium, and the reader must see it beside the others:

- `shape_control` — the Radiomics pipeline on the mask's 2D shape features only (the `shape2D` columns of
  results/radiomics/features.parquet: area, perimeter, diameters, elongation, ...). It sees the outline a
  segmentation drew, no intensity. Wall thickness shows in the outline, so some signal is expected on HCM;
  the question is how much of an image model's AUC it already reaches.
- `slice_control` — slice position only: relative slice index r = slice / (n_slices - 1) (0 = first slice of
  the stack, 1 = last; 0.5 for a one-slice stack), its squared distance from the mid-ventricle
  (r - 0.5)², and the phase (ES = 1, ED = 0), from the preprocessing index. Development images of LGE+ and
  LGE− patients were once selected by different rules (scar slices vs mid-ventricular slices), which lets
  slice position stand in for the label; this control measures what is left of that.

Same training as Radiomics, by reuse, not by copy: `cinescar.radiomics.model.fit_fold` per fold (median
imputation, min-max scaling, grouped LASSO, L1 logistic regression with balanced weights, all fitted on the
fold's `train` images), k among the `radiomics.k_candidates` that the control has features for (else all
its features), chosen by mean validation AUC over folds (`choose_k`). Predictions follow the shared contract,
so the same cut-off rule and patient aggregation (maximum over images) apply.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from cinescar.errors import CinescarError
from cinescar.predictions import PREDICTION_COLUMNS
from cinescar.radiomics.model import FoldResult, RadiomicsSettings, choose_k, cv_table, fit_fold

log = logging.getLogger(__name__)
SHAPE_MARKER = "shape2D"
SLICE_FEATURES = ("relative_slice", "mid_distance_sq", "phase_es")


def shape_features(features: pd.DataFrame) -> pd.DataFrame:
    """`image_id` + the shape2D columns of the radiomics feature table (pyradiomics' `original_shape2D_*`)."""
    cols = [c for c in features.columns if SHAPE_MARKER in str(c)]
    if not cols:
        raise CinescarError("the radiomics feature table has no shape2D columns: enable the shape2D feature class "
                            "in the pyradiomics parameter file for the shape control")  # fmt: skip
    return features[["image_id", *cols]]


def slice_features(index: pd.DataFrame) -> pd.DataFrame:
    """`image_id` + relative slice index, its squared distance from mid-stack, and phase, per image."""
    n = pd.to_numeric(index["n_slices"], errors="coerce").to_numpy(dtype=float)
    s = pd.to_numeric(index["slice"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(n).any() or np.isnan(s).any():
        raise CinescarError("the image index has images without slice / n_slices")
    rel = np.where(n > 1, s / np.maximum(n - 1, 1), 0.5)
    return pd.DataFrame({"image_id": index["image_id"].astype(str).to_numpy(), "relative_slice": rel,
                         "mid_distance_sq": (rel - 0.5) ** 2,
                         "phase_es": (index["phase"].astype(str) == "ES").to_numpy(dtype=float)})


def control_settings(settings: RadiomicsSettings, n_features: int) -> RadiomicsSettings:
    """The Radiomics settings with k limited to what the control has: candidates <= n, else all n features."""
    ks = tuple(k for k in settings.k_candidates if k <= n_features) or (n_features,)
    return replace(settings, k_candidates=ks)


def fit_control(features: pd.DataFrame, index: pd.DataFrame, splits: dict,
                settings: RadiomicsSettings) -> tuple[pd.DataFrame, dict, list[FoldResult]]:  # fmt: skip
    """Every fold's control model; predictions (shared contract) at the k chosen on validation AUC.

    Returns (predictions, choice {k, cv}, fold results with the fitted models).
    """
    settings = control_settings(settings, features.shape[1] - 1)
    results = [fit_fold(features, index, splits, int(f["fold"]), settings) for f in splits["folds"]]
    cv = cv_table([r.scores for r in results])
    k = choose_k(cv)
    preds = pd.concat([r.predictions_by_k for r in results], ignore_index=True)
    preds = preds[preds["k"] == k][PREDICTION_COLUMNS].sort_values(["fold", "split", "image_id"])
    means = cv.groupby("k")["val_auc"].mean()
    log.info("control with %d features: k=%d (mean validation AUC by k %s)", features.shape[1] - 1, k,
             means.round(3).to_dict())
    choice = {"k": int(k), "n_features": int(features.shape[1] - 1),
              "features": [str(c) for c in features.columns if c != "image_id"],
              "criterion": "mean validation AUC (image level) over folds; ties -> smaller k",
              "mean_val_auc": {str(i): float(v) for i, v in means.items()}}
    return preds.reset_index(drop=True), choice, results
