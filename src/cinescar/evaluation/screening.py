"""The screening decision: image probabilities → patient probability → cut-off → LGE scan or not.

Rules (paper Methods, "Statistics", with the reference code's optimism removed):
- a patient's probability is the **maximum** over its images (the paper: positive if at least one image
  exceeds the cut-off — the same decision as thresholding the maximum);
- a patient is positive when its probability is **≥** the cut-off (ties are positive: a screening test
  errs towards scanning);
- the cut-off is the **highest** threshold whose patient-level sensitivity on the fold's validation
  patients (`val_all`) reaches the target (default 0.90); the highest such threshold gives the highest
  specificity among those reaching the target. It is then applied unchanged to the internal test and
  external cohorts, and the sensitivity actually reached there is reported;
- the paper's variant — cut-off chosen on the evaluated cohort itself — is computed only when
  `screening.cutoff_on_test` is true and labelled `optimistic` wherever it appears.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cinescar.evaluation.metrics import METRIC_COLUMNS, screening_metrics
from cinescar.errors import CinescarError, CohortError

PREDICTION_COLUMNS = ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]
SPLITS = ("val", "test", "external")
VALIDATION = "validation"
OPTIMISTIC = "optimistic"
OPERATING_POINT_LABELS = {
    VALIDATION: "cut-off from the fold's validation patients",
    OPTIMISTIC: "optimistic: cut-off chosen on the evaluated cohort itself (the paper's variant)",
}


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
        .agg(lge=("lge", "first"), prob=("prob", "max"), n_images=("image_id", "size"))
        .reset_index()
    )
    return out


def choose_cutoff(y_true: np.ndarray, prob: np.ndarray, target_sensitivity: float = 0.90) -> float:
    """Highest cut-off t with sensitivity(prob ≥ t) ≥ target on these patients.

    With m positives sorted by decreasing probability, at least ceil(target · m) of them must be called
    positive, so t is the ceil(target · m)-th largest positive probability: any higher t calls fewer
    positives, and among cut-offs reaching the target the highest keeps the most negatives negative.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise CinescarError(f"target sensitivity must be in (0, 1], got {target_sensitivity}")
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(prob, dtype=float)
    pos = np.sort(p[y])[::-1]
    if pos.size == 0:
        raise CinescarError("no LGE+ patients to set a sensitivity cut-off on")
    need = max(1, math.ceil(target_sensitivity * pos.size - 1e-9))
    return float(pos[need - 1])


def screening_table(
    patients: pd.DataFrame,
    target_sensitivity: float = 0.90,
    cutoff_on_test: bool = False,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """Operating points and metrics of one model for every fold and cohort.

    `patients` is `patient_probabilities(...)` of one model. Rows: (fold, cohort ∈ val/test/external,
    operating_point, cutoff, metrics...). The `validation` cut-off is always computed; `optimistic` rows
    (cut-off on the test/external cohort itself) only when `cutoff_on_test` is true.
    """
    rows = []
    for fold, pf in patients.groupby("fold", sort=True):
        val = pf[pf["split"] == "val"]
        if val.empty:
            raise CinescarError(f"fold {fold}: no validation patients to set the cut-off on")
        cutoff = choose_cutoff(val["lge"].to_numpy(), val["prob"].to_numpy(), target_sensitivity)
        for cohort in SPLITS:
            pc = pf[pf["split"] == cohort]
            if pc.empty:
                continue
            y, p = pc["lge"].to_numpy(), pc["prob"].to_numpy()
            points = [(VALIDATION, cutoff)]
            if cutoff_on_test and cohort != "val":
                if y.sum() == 0:
                    raise CinescarError(f"fold {fold}, cohort {cohort}: no LGE+ patients for the optimistic cut-off")
                points.append((OPTIMISTIC, choose_cutoff(y, p, target_sensitivity)))
            for label, cut in points:
                m = screening_metrics(y, p, cut, ci_level=ci_level)
                rows.append({"fold": int(fold), "cohort": cohort, "operating_point": label, "cutoff": cut, **m})
    return pd.DataFrame(rows, columns=["fold", "cohort", "operating_point", "cutoff", *METRIC_COLUMNS])
