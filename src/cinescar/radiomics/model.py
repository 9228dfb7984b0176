"""The Radiomics model of one fold: impute -> min-max scale -> LASSO selection of k features -> L1 logistic regression.

Paper (Methods, "Radiomics analysis"): features normalised to [0, 1]; LASSO selects the k most useful features,
k in {5, 10, 20} chosen by validation AUC averaged over 5 folds; an L1-penalised logistic regression with
balanced class weights gives P_Radiomics(scar | image).

No leakage, by construction: every fitted object (imputation medians, scaler, LASSO, classifier) sees only the
fold's `train` images; `val` images only score each k; `val_all`, `test` and `external` images are only predicted.
Unlike the reference code, the LASSO's inner cross-validation is grouped by patient (GroupKFold), so slices of
one patient never sit on both sides of an inner split.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectFromModel
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LassoCV, LogisticRegression, lasso_path
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import MinMaxScaler

from cinescar.errors import CinescarError
from cinescar.cohort.splits import fold_images
from cinescar.predictions import PREDICTION_COLUMNS, ROLE_TO_SPLIT, prediction_rows

log = logging.getLogger(__name__)

FAILURE_POLICIES = ("impute", "exclude")


@dataclass(frozen=True)
class RadiomicsSettings:
    """The `radiomics` config section's model keys (see config/schema.yaml)."""

    k_candidates: tuple[int, ...] = (5, 10, 20)
    C: float = 1.0
    solver: str = "liblinear"
    failure_policy: str = "impute"
    inner_folds: int = 5
    lasso_alphas: int = 30
    lasso_eps: float = 1e-2
    lasso_max_iter: int = 2000
    max_iter: int = 1000
    seed: int = 42

    def __post_init__(self) -> None:
        if self.failure_policy not in FAILURE_POLICIES:
            raise CinescarError(f"radiomics.failure_policy must be one of {FAILURE_POLICIES}, "
                                f"not {self.failure_policy!r}")
        if not self.k_candidates or min(self.k_candidates) < 1:
            raise CinescarError(f"radiomics.k_candidates must be positive integers, got {self.k_candidates}")

    @classmethod
    def from_config(cls, cfg: dict) -> RadiomicsSettings:
        section = dict(cfg.get("radiomics", {}))
        known = {f for f in cls.__dataclass_fields__ if f != "seed"}
        kwargs = {k: v for k, v in section.items() if k in known}
        if "k_candidates" in kwargs:
            kwargs["k_candidates"] = tuple(int(k) for k in kwargs["k_candidates"])
        return cls(seed=int(cfg.get("seed", 42)), **kwargs)


@dataclass
class RadiomicsModel:
    """Everything needed to score a new image's radiomics features (saved per fold with joblib).

    `imputer.statistics_` are the training images' medians (the `impute` failure policy); the scaler maps
    the training range to [0, 1]; `selected` names the k features the classifier reads, in selection order.
    """

    feature_names: list[str]
    imputer: SimpleImputer
    scaler: MinMaxScaler
    selected: list[str]
    classifier: LogisticRegression
    k: int
    failure_policy: str = "impute"
    lasso_coefficients: dict[str, float] = field(default_factory=dict)

    @property
    def medians(self) -> pd.Series:
        return pd.Series(self.imputer.statistics_, index=self.feature_names, name="median")

    @property
    def coefficients(self) -> pd.Series:
        return pd.Series(self.classifier.coef_.ravel(), index=self.selected, name="coefficient")


def _matrix(model: RadiomicsModel, features: pd.DataFrame) -> np.ndarray:
    missing = [c for c in model.feature_names if c not in features.columns]
    if missing:
        raise CinescarError(f"{len(missing)} radiomics feature(s) the model needs are missing from the table, "
                            f"e.g. {missing[:3]}: was it extracted with another parameter file?")
    return features[model.feature_names].to_numpy(dtype=np.float64)


def predict_images(model: RadiomicsModel, features: pd.DataFrame) -> np.ndarray:
    """P(scar | image) for each row of `features` (columns: at least the model's feature names).

    Missing feature values (a failed extraction) are imputed with the training medians under the `impute`
    policy; under `exclude` such an image gets NaN (no prediction), which callers count and report.
    """
    raw = _matrix(model, features)
    prob = model.classifier.predict_proba(_transform(model, raw))[:, 1]
    if model.failure_policy == "exclude":
        prob[np.isnan(raw).any(axis=1)] = np.nan
    return prob


def _transform(model: RadiomicsModel, raw: np.ndarray) -> np.ndarray:
    scaled = model.scaler.transform(model.imputer.transform(raw))
    cols = [model.feature_names.index(name) for name in model.selected]
    return scaled[:, cols]


@dataclass
class LassoRanking:
    """One LASSO fit on a fold's training images, shared by every k (the selection differs only in k)."""

    lasso: LassoCV
    X: np.ndarray
    y: np.ndarray
    _entry: np.ndarray | None = None

    def entry_order(self) -> np.ndarray:
        """Features in the order they enter the LASSO path (largest alpha first); never-entering ones last."""
        if self._entry is None:
            alphas = np.sort(np.asarray(self.lasso.alphas_))[::-1]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                _, coefs, _ = lasso_path(self.X, self.y, alphas=alphas, max_iter=self.lasso.max_iter)
            nonzero = np.abs(coefs) > 0
            first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), len(alphas))
            self._entry = np.lexsort((np.arange(len(first)), first))  # stable: ties keep column order
            self._entry = self._entry[first[self._entry] < len(alphas)]
        return self._entry

    def select(self, k: int) -> np.ndarray:
        """Column indices of the k selected features, in rank order.

        SelectFromModel(max_features=k) on the cross-validated LASSO; when that alpha leaves fewer than k
        non-zero coefficients, the remaining places go to the next features to enter the LASSO path, so that
        "k features" means k features (documented in docs/radiomics.md).
        """
        coef = np.abs(self.lasso.coef_)
        support = SelectFromModel(self.lasso, prefit=True, max_features=k).get_support()
        chosen = np.flatnonzero(support)
        chosen = list(chosen[np.lexsort((chosen, -coef[chosen]))])
        if len(chosen) < k:
            for j in self.entry_order():
                if len(chosen) == k:
                    break
                if j not in chosen:
                    chosen.append(int(j))
            if len(chosen) < k:
                log.warning("only %d features ever enter the LASSO path; k=%d gets %d", len(chosen), k, len(chosen))
        return np.asarray(chosen, dtype=int)


def fit_lasso(X: np.ndarray, y: np.ndarray, groups: np.ndarray, settings: RadiomicsSettings) -> LassoRanking:
    """LassoCV on scaled training features, inner CV grouped by patient (GroupKFold)."""
    n_groups = len(np.unique(groups))
    n_splits = min(settings.inner_folds, n_groups)
    if n_splits < 2:
        raise CinescarError(f"LASSO needs at least 2 training patients for its inner CV, got {n_groups}")
    cv = list(GroupKFold(n_splits=n_splits).split(X, y, groups))
    lasso = LassoCV(alphas=settings.lasso_alphas, eps=settings.lasso_eps, cv=cv, max_iter=settings.lasso_max_iter,
                    random_state=settings.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lasso.fit(X, y.astype(np.float64))
    return LassoRanking(lasso=lasso, X=X, y=y.astype(np.float64))


def _classifier(settings: RadiomicsSettings) -> LogisticRegression:
    # l1_ratio=1 is scikit-learn >= 1.8's spelling of penalty="l1"
    return LogisticRegression(l1_ratio=1.0, C=settings.C, solver=settings.solver, class_weight="balanced",
                              max_iter=settings.max_iter, random_state=settings.seed)


def fit_models(
    X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, settings: RadiomicsSettings
) -> dict[int, RadiomicsModel]:
    """Fit one RadiomicsModel per k in `settings.k_candidates` on training images only.

    Imputation, scaling and the LASSO are fitted once and shared (they do not depend on k).
    """
    names = [str(c) for c in X.columns]
    raw = X.to_numpy(dtype=np.float64)
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise CinescarError("the training images hold only one class; the Radiomics model cannot be fitted")
    imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(raw)
    scaler = MinMaxScaler().fit(imputer.transform(raw))
    scaled = scaler.transform(imputer.transform(raw))
    ranking = fit_lasso(scaled, y, np.asarray(groups), settings)
    models = {}
    for k in settings.k_candidates:
        idx = ranking.select(int(k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = _classifier(settings).fit(scaled[:, idx], y)
        models[int(k)] = RadiomicsModel(
            feature_names=names, imputer=imputer, scaler=scaler, selected=[names[j] for j in idx],
            classifier=clf, k=int(k), failure_policy=settings.failure_policy,
            lasso_coefficients={names[j]: float(ranking.lasso.coef_[j]) for j in idx})
    log.info("LASSO alpha %.3g (%d non-zero of %d features)", ranking.lasso.alpha_,
             int(np.count_nonzero(ranking.lasso.coef_)), len(names))
    return models


@dataclass
class FoldResult:
    """What one fold produces: validation AUC per k, predictions per k, fitted models, selected features."""

    fold: int
    scores: dict[str, Any]
    predictions_by_k: pd.DataFrame
    models: dict[int, RadiomicsModel]
    selected: pd.DataFrame


def _features_of(features: pd.DataFrame, images: pd.DataFrame, role: str) -> pd.DataFrame:
    missing = images.loc[~images["image_id"].isin(features.index), "image_id"]
    if len(missing):
        raise CinescarError(f"{len(missing)} {role} image(s) have no radiomics features, e.g. "
                            f"{missing.head(3).tolist()}: features.parquet and the image index disagree")
    return features.loc[images["image_id"]]


def validation_auc(y: np.ndarray, prob: np.ndarray) -> float:
    """Image-level AUC used to choose k (and the fused classifier); NaN, with a warning, for one class."""
    if len(np.unique(y)) < 2:
        log.warning("validation images hold one class only: AUC undefined")
        return float("nan")
    return float(roc_auc_score(y, prob))


def fit_fold(
    features: pd.DataFrame, index: pd.DataFrame, splits: dict, fold: int, settings: RadiomicsSettings
) -> FoldResult:
    """Fit and score fold `fold` for every candidate k.

    `features`: `image_id` + feature columns (features.parquet); `index`: the image index; `splits`: the splits.
    Training rows are sorted by image_id so the result does not depend on the tables' row order.
    """
    feats = features.set_index("image_id")
    feats.index = feats.index.astype(str)
    roles = {name: table.assign(image_id=table["image_id"].astype(str)).sort_values("image_id")
             for name, table in fold_images(index, splits, fold).items()}
    train = roles["train"]
    X_train = _features_of(feats, train, "train")
    excluded: dict[str, int] = {}
    if settings.failure_policy == "exclude":
        keep = ~X_train.isna().any(axis=1).to_numpy()
        excluded["train"] = int((~keep).sum())
        train, X_train = train[keep], X_train[keep]
    else:
        excluded["train"] = 0
    n_imputed = int(X_train.isna().any(axis=1).sum())
    if n_imputed:
        log.warning("fold %d: %d training image(s) with failed features, imputed with training medians",
                    fold, n_imputed)
    models = fit_models(X_train, train["lge"].to_numpy(), train["patient_id"].astype(str).to_numpy(), settings)

    val = roles["val"]
    X_val = _features_of(feats, val, "val")
    predictions, scores_by_k, selected_rows = [], {}, []
    for k, model in models.items():
        p_val = predict_images(model, X_val)
        ok = ~np.isnan(p_val)
        scores_by_k[str(k)] = {"val_auc": validation_auc(val["lge"].to_numpy(int)[ok], p_val[ok]),
                               "n_selected": len(model.selected)}
        for role, split in ROLE_TO_SPLIT.items():
            table = roles[role]
            prob = predict_images(model, _features_of(feats, table, role)) if len(table) else np.array([])
            predictions.append(prediction_rows(table, fold, split, prob, k=k))
        for rank, (name, coef) in enumerate(model.coefficients.items(), start=1):
            selected_rows.append({"fold": int(fold), "k": k, "rank": rank, "feature": name,
                                  "coefficient": float(coef),
                                  "lasso_coefficient": model.lasso_coefficients[name]})
    preds = pd.concat(predictions, ignore_index=True)
    dropped = preds[preds["prob"].isna()]
    for split, n in dropped[dropped["k"] == dropped["k"].min()].groupby("split").size().items():
        excluded[str(split)] = int(n)
        log.warning("fold %d: %d %s image(s) excluded (failed features, failure_policy=exclude)", fold, n, split)
    preds = preds[preds["prob"].notna()].reset_index(drop=True)
    scores = {"fold": int(fold), "k": scores_by_k, "n_train": int(len(train)), "n_val": int(len(val)),
              "n_train_imputed": n_imputed, "n_excluded": excluded,
              "failure_policy": settings.failure_policy}
    log.info("fold %d: validation AUC by k: %s", fold,
             {k: round(v["val_auc"], 3) for k, v in scores_by_k.items()})
    return FoldResult(fold=int(fold), scores=scores, predictions_by_k=preds, models=models,
                      selected=pd.DataFrame(selected_rows))


def cv_table(scores: list[dict]) -> pd.DataFrame:
    """fold x k validation AUCs as a long table (fold, k, val_auc, n_selected)."""
    rows = [{"fold": int(s["fold"]), "k": int(k), **v} for s in scores for k, v in s["k"].items()]
    return pd.DataFrame(rows).sort_values(["k", "fold"]).reset_index(drop=True)


def choose_k(cv_scores: pd.DataFrame) -> int:
    """The k with the highest mean validation AUC over folds; ties go to the smaller k (fewer features).

    A fold whose validation AUC is undefined (one class) is skipped in the mean; a k with no defined AUC
    cannot be chosen.
    """
    means = cv_scores.groupby("k")["val_auc"].mean()
    means = means.dropna()
    if means.empty:
        raise CinescarError("no candidate k has a defined validation AUC: every fold's validation set holds "
                            "one class only")
    best = means.max()
    return int(min(k for k, v in means.items() if np.isclose(v, best, rtol=0, atol=1e-12)))


def recurrence(selected: pd.DataFrame, k: int) -> pd.DataFrame:
    """How often each feature is selected across folds for k (the paper's Table S2)."""
    sel = selected[selected["k"] == k]
    table = sel.groupby("feature").agg(n_folds=("fold", "nunique"), folds=("fold", lambda f: ";".join(
        str(x) for x in sorted(f))), mean_rank=("rank", "mean"), mean_coefficient=("coefficient", "mean"))
    return table.sort_values(["n_folds", "mean_rank"], ascending=[False, True]).reset_index()
