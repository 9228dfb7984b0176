"""The per-image predictions table: what every model stage (radiomics, DL, DL-Radiomics, the baselines)
writes and the evaluation reads (docs/architecture.md, "Predictions"), and the split vocabulary it speaks.

One home so that a stage and the evaluation cannot disagree on a column or on a split's name; kept at the
bottom of the import graph (numpy and pandas only) so a stage can import it without importing the evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PREDICTION_COLUMNS = ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]
"""One row per (fold, image): its split in that fold (`val`, `test`, `external`), the patient's LGE label and
the model's probability."""

ROLE_TO_SPLIT = {"val_all": "val", "test": "test", "external": "external"}
"""The fold roles a model predicts (`cinescar.cohort.splits.fold_images`) -> the `split` they are written as:
all images of the fold's validation patients are the `val` split (the patient-level cut-off is chosen there)."""

SPLIT_TO_ROLE = {split: role for role, split in ROLE_TO_SPLIT.items()}

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
