"""Radiomics model (paper: pyradiomics features -> LASSO selection -> L1 logistic regression).

- `extract`: pyradiomics on 2D slices, per centre, with per-image failure reporting.
- `model`: per-fold imputation, min-max scaling, LASSO selection of k features, classifier; `predict_images`.
- `run`: the workflow's file-in/file-out wrappers with MLflow logging.

The names below are imported on first use (PEP 562), not with the package: an extraction job imports
`cinescar.radiomics.extract` only, and importing the model here pulled in scikit-learn and scipy.stats
(~1 CPU-s of every extraction job's start-up, issue 27).
"""

from importlib import import_module

_EXPORTS = {"extract_center": "extract", "extract_images": "extract", "feature_names": "extract",
            "gather_features": "extract", "RadiomicsModel": "model", "RadiomicsSettings": "model",
            "choose_k": "model", "fit_fold": "model", "predict_images": "model"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"cinescar.radiomics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cinescar.radiomics' has no attribute {name!r}")
