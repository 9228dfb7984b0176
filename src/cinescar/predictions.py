"""The per-image predictions table: what every model stage (radiomics, DL, DL-Radiomics, the baselines)
writes and the evaluation reads (docs/architecture.md, "Predictions"), and the split vocabulary it speaks.

One home so that a stage and the evaluation cannot disagree on a column or on a split's name; kept at the
bottom of the import graph (numpy, pandas, the errors and the screening rule only) so a stage can import it without importing the evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cinescar.errors import CinescarError, CohortError
from cinescar.screening_rule import PATIENT_AGGREGATE

PREDICTION_COLUMNS = ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]
"""One row per (fold, image): its split in that fold (`val`, `test`, `external`), the patient's LGE label and
the model's probability."""

ROLE_TO_SPLIT = {"val_all": "val", "test": "test", "external": "external"}
"""The fold roles a model predicts (`cinescar.cohort.splits.fold_images`) -> the `split` they are written as:
all images of the fold's validation patients are the `val` split (the patient-level cut-off is chosen there)."""

SPLIT_TO_ROLE = {split: role for role, split in ROLE_TO_SPLIT.items()}

SPLITS = tuple(ROLE_TO_SPLIT.values())
"""Every value the `split` column may hold: ("val", "test", "external")."""

HELD_OUT = ("test", "external")
"""The splits that are only ever predicted, never chosen on: the internal held-out test set and the external
cohort(s), in the order every table reports them."""


def prediction_rows(images: pd.DataFrame, fold: int, split: str, prob: Any, **leading: Any) -> pd.DataFrame:
    """The predictions rows of `images` (rows of the image index) in one split of one fold.

    `prob`: one probability per row of `images`, in its order. `leading`: columns written before the contract's
    (a model's own keys, e.g. `k=10`, `classifier="svm"`), each one value for every row. The one builder of
    the rows, so that the four model stages write the same dtypes in the same column order.
    """
    return pd.DataFrame({
        **leading,
        "image_id": images["image_id"].astype(str).to_numpy(),
        "patient_id": images["patient_id"].astype(str).to_numpy(),
        "fold": int(fold),
        "split": split,
        "dev_selected": images["dev_selected"].astype(bool).to_numpy(),
        "lge": images["lge"].astype(int).to_numpy(),
        "prob": np.asarray(prob, dtype=float),
    })


def _where(source: str | Path | None) -> str:
    return f" {source}" if source is not None else ""


def check_predictions(pred: pd.DataFrame, source: str | Path | None = None) -> None:
    """Raise a clear error if a predictions table breaks the contract of architecture.md."""
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise CinescarError(f"predictions{_where(source)} lack columns {missing}")
    bad_split = sorted(set(pred["split"].astype(str)) - set(SPLITS))
    if bad_split:
        raise CinescarError(f"predictions{_where(source)}: unknown split values {bad_split}")
    prob = pd.to_numeric(pred["prob"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad.any():
        row = pred.loc[bad].iloc[0]
        raise CohortError(
            f"image {row['image_id']} (fold {row['fold']}) has probability {row['prob']!r} outside [0, 1]",
            patient_id=str(row["patient_id"]),
            path=source,
        )
    dup = pred.duplicated(["fold", "image_id"])
    if dup.any():
        row = pred.loc[dup].iloc[0]
        raise CohortError(
            f"image {row['image_id']} appears twice in fold {row['fold']}",
            patient_id=str(row["patient_id"]),
            path=source,
        )


def patient_probabilities(pred: pd.DataFrame, source: str | Path | None = None) -> pd.DataFrame:
    """Patient-level table: one row per (fold, split, patient) with prob = max over its images.

    Columns: fold, split, patient_id, lge, prob, n_images. A patient whose images carry different LGE
    labels is an input error (the label is a patient property), never silently resolved.
    """
    check_predictions(pred, source)
    df = pred.assign(lge=pred["lge"].astype(int), prob=pred["prob"].astype(float))
    labels = df.groupby("patient_id")["lge"].nunique()
    if (labels > 1).any():
        pid = str(labels[labels > 1].index[0])
        raise CohortError("images of this patient carry different LGE labels", patient_id=pid, path=source)
    out = (
        df.groupby(["fold", "split", "patient_id"], sort=True)
        .agg(lge=("lge", "first"), prob=("prob", PATIENT_AGGREGATE), n_images=("image_id", "size"))
        .reset_index()
    )
    return out


def auc_or_nan(y_true: np.ndarray, score: np.ndarray) -> float:
    """Exact ROC AUC, NaN when only one class is present (instead of sklearn's exception)."""
    y = np.asarray(y_true).astype(int)
    m = int(y.sum())
    if m == 0 or m == y.size:
        return float("nan")
    # Mann–Whitney with midranks (ties ½): equal to sklearn.metrics.roc_auc_score (tests/test_bootstrap.py),
    # without its per-call validation overhead
    from scipy import stats

    ranks = stats.rankdata(np.asarray(score, dtype=float), method="average")
    return float((ranks[y == 1].sum() - m * (m + 1) / 2.0) / (m * (y.size - m)))
