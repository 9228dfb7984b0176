"""Radiomics model (paper: pyradiomics features -> LASSO selection -> L1 logistic regression).

- `extract`: pyradiomics on 2D slices, per centre, with per-image failure reporting.
- `model`: per-fold imputation, min-max scaling, LASSO selection of k features, classifier; `predict_images`.
- `run`: the workflow's file-in/file-out wrappers with MLflow logging.
"""

from cinescar.radiomics.extract import extract_center, extract_images, feature_names, gather_features
from cinescar.radiomics.model import RadiomicsModel, RadiomicsSettings, choose_k, fit_fold, predict_images

__all__ = ["extract_center", "extract_images", "feature_names", "gather_features", "RadiomicsModel",
           "RadiomicsSettings", "choose_k", "fit_fold", "predict_images"]
