"""The clinical model: what the manifest's clinical table predicts without any image.

Why: a screening model earns its place only if the cine images tell more than the variables a cardiologist
already has (MWT, LVM, LVEF, LVEDV, age, sex). This is that reference, trained exactly like the image models:
per fold on the fold's training patients, scored on its validation patients, predicting the internal test
and external patients, with the same cut-off rule and patient-level evaluation.

Model: median imputation -> standardisation -> logistic regression (L2, `clinical.C`, class weights
`clinical.class_weight`, balanced by default like the image models), a scikit-learn Pipeline fitted on the
fold's training patients only (so the imputation medians and scaling come from them alone). Sex enters as
male = 1 / female = 0; an unknown value is missing and imputed.

Variables: `clinical.variables` (default MWT, LVM, LVEF, LVEDV, age, sex), keeping those that hold at least
one value among the development patients. None present -> the model is not available, which is reported in
a sentence, never an error (`ClinicalData.note`).

The clinical model is patient level, but writes the image models' predictions contract
(docs/architecture.md "Predictions"): one row per `val_all`/`test`/`external` image of each fold, every image
of a patient carrying that patient's probability. The evaluation's patient aggregation (maximum over images)
then returns exactly the model's output, and its coverage check applies unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from cinescar.cohort.contract import CLINICAL_CATEGORICAL, CLINICAL_NUMERIC
from cinescar.errors import CinescarError, CohortError
from cinescar.cohort.splits import fold_images
from cinescar.predictions import PREDICTION_COLUMNS, ROLE_TO_SPLIT, prediction_rows

log = logging.getLogger(__name__)

DEFAULT_VARIABLES = ("MWT", "LVM", "LVEF", "LVEDV", "age", "sex")
KNOWN_VARIABLES = (*CLINICAL_NUMERIC, *CLINICAL_CATEGORICAL)
SEX_CODES = {"M": 1.0, "F": 0.0}


@dataclass(frozen=True)
class ClinicalSettings:
    """The `clinical` config section (config/schema.yaml)."""

    variables: tuple[str, ...] = DEFAULT_VARIABLES
    C: float = 1.0
    class_weight: str | None = "balanced"
    max_iter: int = 1000
    seed: int = 42

    @classmethod
    def from_config(cls, cfg: dict) -> ClinicalSettings:
        section = dict(cfg.get("clinical") or {})
        unknown = sorted(set(section.get("variables") or ()) - set(KNOWN_VARIABLES))
        if unknown:
            raise CinescarError(f"clinical.variables {unknown} are not clinical columns of the manifest contract "
                                f"({', '.join(KNOWN_VARIABLES)})")
        cw = section.get("class_weight", "balanced")
        return cls(variables=tuple(section.get("variables", DEFAULT_VARIABLES)), C=float(section.get("C", 1.0)),
                   class_weight=None if cw in (None, "none") else str(cw),
                   max_iter=int(section.get("max_iter", 1000)), seed=int(cfg.get("seed", 42)))


@dataclass
class ClinicalData:
    """Per patient, the numeric clinical variables the model reads (index patient_id), and why others are absent."""

    X: pd.DataFrame
    lge: pd.Series
    variables: list[str]
    absent: list[str]

    @property
    def available(self) -> bool:
        return bool(self.variables)

    @property
    def note(self) -> str:
        """One sentence for summary.json and the report."""
        if not self.available:
            return ("No clinical model: the manifest holds none of the clinical variables "
                    f"{', '.join(self.absent)} for the development patients, so the images cannot be compared "
                    "with a clinical baseline on this cohort.")  # fmt: skip
        extra = f"; not in the manifest: {', '.join(self.absent)}" if self.absent else ""
        return f"Clinical model on {', '.join(self.variables)}{extra}."


def _numeric(manifest: pd.DataFrame, column: str) -> pd.Series:
    if column == "sex":
        return manifest[column].astype("string").str.strip().str.upper().map(SEX_CODES).astype(float)
    return pd.to_numeric(manifest[column], errors="coerce").astype(float)


def clinical_data(manifest: pd.DataFrame, splits: dict, settings: ClinicalSettings) -> ClinicalData:
    """The configured variables present among development patients (any value), as numbers per patient.

    Which variables exist is decided once, on the development patients' columns (not their labels), so
    every fold reads the same variables; values of test/external patients are only ever predicted from.
    """
    table = manifest.assign(patient_id=manifest["patient_id"].astype(str)).set_index("patient_id")
    dev = [str(p) for f in splits["folds"] for p in f["val"]]
    used, absent = [], []
    columns = {}
    for var in settings.variables:
        if var not in table.columns:
            absent.append(var)
            continue
        values = _numeric(table, var)
        if values.reindex(dev).notna().sum() == 0:
            absent.append(var)
            continue
        used.append(var)
        columns["male" if var == "sex" else var] = values
    X = pd.DataFrame(columns, index=table.index)
    lge = pd.to_numeric(table["lge"], errors="coerce")
    return ClinicalData(X=X, lge=lge, variables=used, absent=absent)


def make_pipeline(settings: ClinicalSettings) -> Pipeline:
    """Median imputation -> standardisation -> logistic regression; every step fitted on training patients."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="median")),
        ("scale", StandardScaler()),
        ("classify", LogisticRegression(C=settings.C, class_weight=settings.class_weight,
                                        max_iter=settings.max_iter, random_state=settings.seed)),
    ])  # fmt: skip


def fit_patients(X: pd.DataFrame, y: np.ndarray, settings: ClinicalSettings) -> Pipeline:
    """Fit the pipeline on training patients (rows of X); both classes must be present."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise CinescarError("the training patients hold only one class; a patient-level model cannot be fitted")
    cols = [c for c in X.columns if X[c].notna().any()]
    if len(cols) < X.shape[1]:
        raise CinescarError(f"no training patient has a value of {sorted(set(X.columns) - set(cols))}")
    return make_pipeline(settings).fit(X.to_numpy(dtype=float), y)


def fold_patients(splits: dict, fold: int) -> dict[str, list[str]]:
    """Patient IDs per role of one fold: train, val, test, external (sorted, so row order never matters)."""
    f = next((x for x in splits["folds"] if int(x["fold"]) == int(fold)), None)
    if f is None:
        raise CinescarError(f"fold {fold} is not in the splits")
    return {"train": sorted(map(str, f["train"])), "val": sorted(map(str, f["val"])),
            "test": sorted(map(str, splits["test"])), "external": sorted(map(str, splits["external"]))}


def _rows(X: pd.DataFrame, ids: list[str], what: str) -> pd.DataFrame:
    missing = [p for p in ids if p not in X.index]
    if missing:
        raise CohortError(f"{what} patient is not in the clinical table (manifest)", patient_id=missing[0])
    return X.loc[ids]


def fit_fold(data: ClinicalData, splits: dict, fold: int, settings: ClinicalSettings) -> tuple[Pipeline, pd.DataFrame]:
    """Fit fold `fold` on its training patients; patient probabilities of its val/test/external patients.

    Returns (fitted pipeline, DataFrame[patient_id, split, prob]).
    """
    roles = fold_patients(splits, fold)
    X_train = _rows(data.X, roles["train"], "training")
    model = fit_patients(X_train, data.lge.loc[roles["train"]].to_numpy(), settings)
    frames = []
    for split in ("val", "test", "external"):
        ids = roles[split]
        if not ids:
            continue
        prob = model.predict_proba(_rows(data.X, ids, split).to_numpy(dtype=float))[:, 1]
        frames.append(pd.DataFrame({"patient_id": ids, "split": split, "prob": prob}))
    return model, pd.concat(frames, ignore_index=True)


def to_image_rows(patient_probs: pd.DataFrame, index: pd.DataFrame, splits: dict, fold: int) -> pd.DataFrame:
    """The predictions contract for a patient-level model: each val_all/test/external image of the fold
    carries its patient's probability (so max over images = the patient probability, exactly)."""
    roles = fold_images(index, splits, fold)
    prob = patient_probs.set_index(["split", "patient_id"])["prob"]
    frames = []
    for role, split in ROLE_TO_SPLIT.items():
        t = roles[role]
        if t.empty:
            continue
        pids = t["patient_id"].astype(str)
        keys = pd.MultiIndex.from_arrays([[split] * len(t), pids])
        missing = ~keys.isin(prob.index)
        if missing.any():
            raise CohortError(f"fold {fold} {split}: patient has images but no patient-level probability",
                              patient_id=str(pids[missing].iloc[0]))
        frames.append(prediction_rows(t, fold, split, prob.reindex(keys).to_numpy(dtype=float)))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTION_COLUMNS)
    return out[PREDICTION_COLUMNS].sort_values(["split", "image_id"]).reset_index(drop=True)


def empty_predictions() -> pd.DataFrame:
    """A predictions table with no rows: the model is not available on this cohort (see its status.json)."""
    return pd.DataFrame({"image_id": pd.Series(dtype=str), "patient_id": pd.Series(dtype=str),
                         "fold": pd.Series(dtype=int), "split": pd.Series(dtype=str),
                         "dev_selected": pd.Series(dtype=bool), "lge": pd.Series(dtype=int),
                         "prob": pd.Series(dtype=float)})  # fmt: skip


def coefficients(model: Pipeline, names: list[str]) -> dict[str, float]:
    """Standardised log-odds coefficients (per SD of each variable) of a fitted pipeline, for the logs."""
    clf = model.named_steps["classify"]
    return {n: float(c) for n, c in zip(names, clf.coef_.ravel(), strict=True)} | {
        "intercept": float(clf.intercept_[0])}
