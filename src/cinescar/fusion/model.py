"""The DL-Radiomics (fused) model of one fold: DL features + radiomics features → impute → min-max scale →
LASSO selection of k features → one of five classifiers.

Paper (Methods, "Combined radiomics and deep learning based cine analysis"): each image's 256 DL features
(second-to-last dense layer of the fold's own CNN) are concatenated with its radiomics features; the number
of features k (5…50) is chosen by validation AUC averaged over the five folds, then five classifiers — L1
logistic regression with balanced class weights, a multi-layer perceptron, random forest, gradient-boosted
trees, SVM — are compared on validation AUC (mean and SD over folds, Table S1); the best becomes the
DL-Radiomics model.

The LASSO selection is the Radiomics model's own (`cinescar.radiomics.model.fit_lasso` / `LassoRanking`,
inner CV grouped by patient), with the `radiomics` section's LASSO settings and failure policy, so both
models select features the same way.

No leakage, by construction: the imputer, scaler, LASSO and classifiers see only the fold's `train` images;
`val` images only score each (k, classifier); `val_all`, `test` and `external` images are only predicted.
The DL features of fold f come from fold f's CNN, which was itself trained on fold f's `train` images only.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from cinescar.errors import CinescarError, CohortError
from cinescar.cohort.splits import fold_images
from cinescar.radiomics.model import RadiomicsSettings, fit_lasso, validation_auc
from cinescar.predictions import PREDICTION_COLUMNS, ROLE_TO_SPLIT, prediction_rows

log = logging.getLogger(__name__)

CLASSIFIERS = ("logistic_l1", "mlp", "random_forest", "hist_gradient_boosting", "svm")
CLASSIFIER_LABELS = {
    "logistic_l1": "Logistic regression (L1, balanced)",
    "mlp": "Multi-layer perceptron",
    "random_forest": "Random forest",
    "hist_gradient_boosting": "Gradient-boosted trees (HistGradientBoosting)",
    "svm": "SVM (RBF, Platt probabilities)",
}
DL_COLUMN = re.compile(r"^dl_\d{3}$")
_FIXED_THREADS = {"hist_gradient_boosting": 1}
"""Classifiers that run on one OpenMP thread whatever `fusion.threads` says. scikit-learn's gradient boosting
parallelises histograms and split finding over features, so its trees do not depend on the thread count
(checked: identical probabilities with 1 and 2 threads); on a fold's few thousand images the OpenMP
threads only cost -- one thread fitted 1.2-1.6x faster on the 2-vCPU machine, and it leaves the second core
to another job (docs/performance.md)."""


def make_classifier(name: str, seed: int, params: dict | None = None, threads: int = 1) -> Any:
    """A fresh, unfitted classifier; `params` override the defaults (config `fusion.classifier_params`).

    Defaults: class weights balanced wherever scikit-learn supports them (the MLP does not), fixed seeds
    so the same config gives the same numbers.
    """
    p = dict(params or {})
    if name == "logistic_l1":
        # l1_ratio=1 is scikit-learn >= 1.8's spelling of penalty="l1"
        kw = {"l1_ratio": 1.0, "C": 1.0, "solver": "liblinear", "class_weight": "balanced", "max_iter": 1000,
              "random_state": seed} | p  # fmt: skip
        return LogisticRegression(**kw)
    if name == "mlp":
        kw = {"hidden_layer_sizes": (64, 32), "alpha": 1e-3, "max_iter": 300, "early_stopping": True,
              "random_state": seed} | p  # fmt: skip
        if "hidden_layer_sizes" in kw:
            kw["hidden_layer_sizes"] = tuple(kw["hidden_layer_sizes"])
        return MLPClassifier(**kw)
    if name == "random_forest":
        kw = {"n_estimators": 300, "min_samples_leaf": 3, "class_weight": "balanced", "random_state": seed,
              "n_jobs": threads} | p  # fmt: skip
        return RandomForestClassifier(**kw)
    if name == "hist_gradient_boosting":
        kw = {"learning_rate": 0.05, "max_iter": 200, "class_weight": "balanced", "early_stopping": False,
              "random_state": seed} | p  # fmt: skip
        return HistGradientBoostingClassifier(**kw)
    if name == "svm":
        # SVC(probability=True) is deprecated since scikit-learn 1.9; its documented replacement is Platt
        # scaling by CalibratedClassifierCV with ensemble=False (one SVC on all training images, sigmoid fitted
        # on 5-fold cross-validated decision values).
        kw = {"kernel": "rbf", "C": 1.0, "class_weight": "balanced"} | p
        return CalibratedClassifierCV(SVC(**kw), method="sigmoid", cv=5, ensemble=False)
    raise CinescarError(f"unknown fusion classifier {name!r}; choose from {list(CLASSIFIERS)}")


@dataclass(frozen=True)
class FusionSettings:
    """The `fusion` config section (config/schema.yaml) plus the shared LASSO settings."""

    k_candidates: tuple[int, ...] = (5, 10, 20, 30, 40, 50)
    classifiers: tuple[str, ...] = CLASSIFIERS
    k_classifier: str = "logistic_l1"
    classifier_params: dict = field(default_factory=dict)
    threads: int = 1
    seed: int = 42
    lasso: RadiomicsSettings = field(default_factory=RadiomicsSettings)

    def __post_init__(self) -> None:
        if not self.k_candidates or min(self.k_candidates) < 1:
            raise CinescarError(f"fusion.k_candidates must be positive integers, got {self.k_candidates}")
        unknown = sorted(set(self.classifiers) - set(CLASSIFIERS))
        if unknown or not self.classifiers:
            raise CinescarError(f"fusion.classifiers: unknown {unknown}; choose from {list(CLASSIFIERS)}")
        if self.k_classifier not in self.classifiers:
            raise CinescarError(f"fusion.k_classifier {self.k_classifier!r} must be one of fusion.classifiers")

    @classmethod
    def from_config(cls, cfg: dict, threads: int = 1) -> FusionSettings:
        sec = dict(cfg.get("fusion", {}))
        kw: dict[str, Any] = {}
        if "k_candidates" in sec:
            kw["k_candidates"] = tuple(int(k) for k in sec["k_candidates"])
        if "classifiers" in sec:
            kw["classifiers"] = tuple(str(c) for c in sec["classifiers"])
        if "k_classifier" in sec:
            kw["k_classifier"] = str(sec["k_classifier"])
        if "classifier_params" in sec:
            kw["classifier_params"] = dict(sec["classifier_params"] or {})
        return cls(seed=int(cfg.get("seed", 42)), threads=int(threads), lasso=RadiomicsSettings.from_config(cfg),
                   **kw)


@dataclass
class FusionModel:
    """One fitted (k, classifier) configuration of one fold; everything needed to score new images.

    Input: a table with the radiomics feature columns and `dl_000…dl_255` of the *same fold's* CNN.
    """

    feature_names: list[str]
    imputer: SimpleImputer
    scaler: MinMaxScaler
    selected: list[str]
    classifier: Any
    classifier_name: str
    k: int
    failure_policy: str = "impute"

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """P(scar | image) per row; NaN for an image with failed radiomics under failure_policy=exclude."""
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise CinescarError(f"{len(missing)} fused feature(s) the model needs are missing, e.g. {missing[:3]}")
        raw = features[self.feature_names].to_numpy(dtype=np.float64)
        return self.predict_scaled(self.scaler.transform(self.imputer.transform(raw)), np.isnan(raw).any(axis=1))

    def predict_scaled(self, scaled: np.ndarray, failed: np.ndarray) -> np.ndarray:
        """`predict` on rows already imputed and scaled by this model's imputer and scaler (`failed`: rows with
        a missing raw feature). Why: every (k, classifier) of a fold shares them, so `fit_fold` transforms each
        image set once instead of once per configuration -- same arithmetic, same numbers."""
        cols = [self.feature_names.index(n) for n in self.selected]
        with threadpool_limits(limits=_FIXED_THREADS.get(self.classifier_name)):
            prob = self.classifier.predict_proba(scaled[:, cols])[:, 1]
        if self.failure_policy == "exclude":
            prob[failed] = np.nan
        return prob


def fuse_features(radiomics: pd.DataFrame, dl: pd.DataFrame, radiomics_source: str = "radiomics features",
                  dl_source: str = "DL features") -> pd.DataFrame:  # fmt: skip
    """Concatenate radiomics and DL features per image (index image_id, radiomics columns first).

    Radiomics NaNs are failed extractions (handled by the failure policy); a non-finite DL feature is an error
    naming the image, since the CNN produces finite activations for every image it sees.
    """
    for df, src in ((radiomics, radiomics_source), (dl, dl_source)):
        if "image_id" not in df.columns:
            raise CinescarError(f"{src} has no image_id column")
        dup = df["image_id"].astype(str).duplicated()
        if dup.any():
            raise CinescarError(f"{src}: image {df.loc[dup, 'image_id'].iloc[0]} appears twice")
    dl_cols = [c for c in dl.columns if c != "image_id"]
    bad = [c for c in dl_cols if not DL_COLUMN.match(str(c))]
    if bad or not dl_cols:
        raise CinescarError(f"{dl_source}: expected columns dl_000… only, got {bad[:3] or 'none'}")
    rad = radiomics.set_index(radiomics["image_id"].astype(str)).drop(columns="image_id")
    dlf = dl.set_index(dl["image_id"].astype(str)).drop(columns="image_id")
    clash = sorted(set(rad.columns) & set(dlf.columns))
    if clash:
        raise CinescarError(f"radiomics and DL features share column names {clash[:3]}")
    nonnum = [c for c in rad.columns if not pd.api.types.is_numeric_dtype(rad[c])]
    if nonnum:
        raise CinescarError(f"{radiomics_source}: non-numeric feature columns {nonnum[:3]}")
    values = dlf.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        iid = dlf.index[~np.isfinite(values).all(axis=1)][0]
        raise CohortError(f"image {iid} has non-finite DL features", patient_id=iid.rsplit("_", 2)[0],
                          path=dl_source)
    return rad.join(dlf, how="inner")


def _features_of(features: pd.DataFrame, images: pd.DataFrame, role: str, source: str) -> pd.DataFrame:
    missing = images.loc[~images["image_id"].isin(features.index)]
    if len(missing):
        row = missing.iloc[0]
        raise CohortError(f"{len(missing)} {role} image(s) lack radiomics or DL features, e.g. {row['image_id']}",
                          patient_id=str(row["patient_id"]), path=source)
    return features.loc[images["image_id"]]


@dataclass
class FusionFoldResult:
    """One fold: validation AUC per (k, classifier), predictions per configuration, fitted models."""

    fold: int
    scores: dict[str, Any]
    predictions_by_config: pd.DataFrame
    models: dict[tuple[int, str], FusionModel]


def fit_fold(features: pd.DataFrame, index: pd.DataFrame, splits: dict, fold: int, settings: FusionSettings,
             source: str = "fused features") -> FusionFoldResult:  # fmt: skip
    """Fit every (k, classifier) of fold `fold` on its train images; score on val; predict the rest.

    `features`: fused features indexed by image_id (`fuse_features`). Imputation, scaling and the LASSO do
    not depend on k or the classifier and are fitted once. Rows are sorted by image_id so that the result
    does not depend on the tables' row order.
    """
    roles = {name: t.assign(image_id=t["image_id"].astype(str)).sort_values("image_id")
             for name, t in fold_images(index, splits, fold).items()}
    policy = settings.lasso.failure_policy
    train = roles["train"]
    X_train = _features_of(features, train, "train", source)
    n_failed = int(X_train.isna().any(axis=1).sum())
    if policy == "exclude" and n_failed:
        keep = ~X_train.isna().any(axis=1).to_numpy()
        train, X_train = train[keep], X_train[keep]
        log.warning("fold %d: %d training image(s) with failed radiomics excluded", fold, n_failed)
    elif n_failed:
        log.warning("fold %d: %d training image(s) with failed radiomics, imputed with training medians",
                    fold, n_failed)
    y_train = train["lge"].to_numpy(dtype=int)
    if len(np.unique(y_train)) < 2:
        raise CinescarError(f"fold {fold}: the training images hold only one class")
    names = [str(c) for c in X_train.columns]
    raw = X_train.to_numpy(dtype=np.float64)
    imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(raw)
    scaler = MinMaxScaler().fit(imputer.transform(raw))
    scaled = scaler.transform(imputer.transform(raw))
    ranking = fit_lasso(scaled, y_train, train["patient_id"].astype(str).to_numpy(), settings.lasso)

    val = roles["val"]
    X_val = _features_of(features, val, "val", source)
    y_val = val["lge"].to_numpy(dtype=int)
    other = {role: (roles[role], _features_of(features, roles[role], role, source)) for role in ROLE_TO_SPLIT}
    # imputed + scaled once per image set, shared by every (k, classifier): FusionModel.predict_scaled
    prepared = {role: _prepare(X, imputer, scaler) for role, X in [("val", X_val)] + [
        (role, X) for role, (_, X) in other.items()]}
    models: dict[tuple[int, str], FusionModel] = {}
    score_rows, predictions = [], []
    selected: dict[str, list[dict]] = {}
    for k in settings.k_candidates:
        idx = ranking.select(int(k))
        sel = [names[j] for j in idx]
        selected[str(k)] = [{"rank": r, "feature": n, "lasso_coefficient": float(ranking.lasso.coef_[j])}
                            for r, (n, j) in enumerate(zip(sel, idx, strict=True), start=1)]
        for name in settings.classifiers:
            clf = make_classifier(name, settings.seed, settings.classifier_params.get(name), settings.threads)
            # keep OpenMP/BLAS (gradient boosting, SVM) within the job's declared threads: on a many-core
            # node they would otherwise take every core, whatever Snakemake's `threads:` says
            with warnings.catch_warnings(), threadpool_limits(limits=_FIXED_THREADS.get(name, settings.threads)):
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(scaled[:, idx], y_train)
            if isinstance(clf, RandomForestClassifier):
                # parallel predict_proba adds the trees' votes in thread-completion order, which changes the
                # last bits between runs; sequential prediction keeps same config -> same numbers
                clf.set_params(n_jobs=1)
            model = FusionModel(feature_names=names, imputer=imputer, scaler=scaler, selected=sel, classifier=clf,
                                classifier_name=name, k=int(k), failure_policy=policy)
            models[(int(k), name)] = model
            p_val = model.predict_scaled(*prepared["val"])
            ok = ~np.isnan(p_val)
            score_rows.append({"k": int(k), "classifier": name, "val_auc": validation_auc(y_val[ok], p_val[ok]),
                               "n_selected": len(sel)})
            for role, split in ROLE_TO_SPLIT.items():
                table, _ = other[role]
                prob = model.predict_scaled(*prepared[role]) if len(table) else np.array([])
                predictions.append(prediction_rows(table, fold, split, prob, k=int(k), classifier=name))
    preds = pd.concat(predictions, ignore_index=True)
    n_dropped = int(preds["prob"].isna().sum())
    if n_dropped:
        first = preds[preds["prob"].isna()].drop_duplicates("image_id")
        log.warning("fold %d: %d image(s) not predicted (failed radiomics, failure_policy=exclude): %s", fold,
                    len(first), first["image_id"].head(5).tolist())
        preds = preds[preds["prob"].notna()].reset_index(drop=True)
    n_rad = sum(1 for c in names if not DL_COLUMN.match(c))
    scores = {"fold": int(fold), "scores": score_rows, "selected": selected, "n_train": int(len(train)),
              "n_val": int(len(val)), "n_features": {"radiomics": n_rad, "dl": len(names) - n_rad},
              "n_train_failed_radiomics": n_failed, "failure_policy": policy,
              "lasso_alpha": float(ranking.lasso.alpha_)}  # fmt: skip
    log.info("fold %d: validation AUC %s", fold,
             {f"k{r['k']}/{r['classifier']}": round(r["val_auc"], 3) for r in score_rows})
    return FusionFoldResult(fold=int(fold), scores=scores, predictions_by_config=preds, models=models)


def _prepare(X: pd.DataFrame, imputer: SimpleImputer, scaler: MinMaxScaler) -> tuple[np.ndarray, np.ndarray]:
    """(imputed and scaled rows, rows with a missing raw feature), exactly as FusionModel.predict computes them."""
    raw = X.to_numpy(dtype=np.float64)
    if not len(raw):
        return raw, np.zeros(0, dtype=bool)
    return scaler.transform(imputer.transform(raw)), np.isnan(raw).any(axis=1)


def score_table(scores: list[dict]) -> pd.DataFrame:
    """fold × k × classifier validation AUCs as one long table."""
    rows = [{"fold": int(s["fold"]), **r} for s in scores for r in s["scores"]]
    return pd.DataFrame(rows).sort_values(["k", "classifier", "fold"]).reset_index(drop=True)


def choose_configuration(scores: pd.DataFrame, settings: FusionSettings) -> dict[str, Any]:
    """Choose k, then the classifier, as the paper did (in this order).

    1. k: highest mean validation AUC over folds of the reference classifier (`fusion.k_classifier`, the
       L1 logistic regression by default); ties → smaller k.
    2. classifier at that k: highest mean validation AUC over folds; ties → lowest SD; then config order.
    Returns {"k", "classifier", "k_table" (DataFrame), "classifier_table" (DataFrame = Table S1)}.
    """
    ref = scores[scores["classifier"] == settings.k_classifier]
    k_table = ref.groupby("k")["val_auc"].agg(mean="mean", sd="std", n_folds="count").reset_index()
    valid = k_table.dropna(subset=["mean"])
    if valid.empty:
        raise CinescarError("no k has a defined validation AUC (every fold's validation set holds one class)")
    best = valid["mean"].max()
    k = int(valid.loc[np.isclose(valid["mean"], best, rtol=0, atol=1e-12), "k"].min())

    at_k = scores[scores["k"] == k]
    wide = at_k.pivot(index="classifier", columns="fold", values="val_auc")
    wide.columns = [f"fold_{int(c)}" for c in wide.columns]
    table = wide.assign(mean=wide.mean(axis=1), sd=wide.std(axis=1, ddof=1)).reset_index()
    table["order"] = table["classifier"].map({c: i for i, c in enumerate(settings.classifiers)})
    table["mean_r"] = table["mean"].round(12)
    table["sd_r"] = table["sd"].fillna(np.inf).round(12)
    ranked = table.dropna(subset=["mean"]).sort_values(["mean_r", "sd_r", "order"], ascending=[False, True, True])
    if ranked.empty:
        raise CinescarError(f"no classifier has a defined validation AUC at k={k}")
    choice = str(ranked["classifier"].iloc[0])
    table["k"] = k
    table["chosen"] = table["classifier"] == choice
    table["label"] = table["classifier"].map(CLASSIFIER_LABELS)
    cols = ["classifier", "label", "k", *[c for c in table.columns if c.startswith("fold_")], "mean", "sd", "chosen"]
    table = table.sort_values("order")[cols].reset_index(drop=True)
    return {"k": k, "classifier": choice, "k_table": k_table, "classifier_table": table}
