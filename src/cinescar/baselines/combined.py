"""Incremental value: an image model's patient probability + the clinical variables, stacked out of fold.

Question answered: do the images add discrimination beyond the clinical model? The combined model of fold
`f` is the clinical pipeline (`cinescar.baselines.clinical.make_pipeline`) with one more input, the image
model's patient probability on the logit scale. Fitting it needs that probability for fold `f`'s
*training* patients, and the image model of fold `f` saw those patients — its probabilities for them are
in-sample (and the workflow never even writes them). Instead:

| patients of fold f | image-model probability used | out of fold? |
|---|---|---|
| training (fit the combined model) | from the fold `g != f` in which the patient was a validation patient (each development patient is validated exactly once) | yes: model `g` never saw the patient |
| validation (cut-off, pooled operating point) | fold `f`'s own model | yes: model `f` never saw them |
| internal test, external | fold `f`'s own model | yes: no model saw them |

What is *not* out of fold, and why it is accepted: the models `g != f` that give the training patients'
probabilities were themselves trained on patients that include fold `f`'s validation patients. So the
combined model of fold `f` is fitted on numbers that fold `f`'s validation labels helped to make; its
validation predictions (used for the cut-off) are second-order in-sample. Test and external patients touch
nothing at any order. Removing the second-order effect would need nested cross-validation of every image
model (the CNN included), i.e. 20 more trainings instead of 5; we report it instead (docs/evaluation.md).

`stacking_table` enforces the first column of the table above: every probability it returns for a
training patient comes from a fold whose training set does not hold that patient, or it raises.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from cinescar.baselines.clinical import ClinicalData, ClinicalSettings, _rows, fit_patients, fold_patients
from cinescar.errors import CinescarError, CohortError

log = logging.getLogger(__name__)
IMAGE_COLUMN = "image_logit"
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), clipped to [1e-6, 1 - 1e-6] so a probability of exactly 0 or 1 stays finite."""
    q = np.clip(np.asarray(p, dtype=float), EPS, 1.0 - EPS)
    return np.log(q / (1.0 - q))


def out_of_fold(patients: pd.DataFrame, splits: dict) -> pd.DataFrame:
    """Every development patient's image-model probability from the one fold that validated it.

    `patients`: patient-level table of one image model (`patient_probabilities`: fold, split, patient_id,
    lge, prob). Returns patient_id, source_fold, prob, lge. Raises when a development patient is validated
    in no fold or in more than one, or when a validation row is a training patient of its own fold.
    """
    val = patients[patients["split"] == "val"]
    train_of = {int(f["fold"]): set(map(str, f["train"])) for f in splits["folds"]}
    inside = [(str(r.patient_id), int(r.fold)) for r in val.itertuples() if str(r.patient_id) in train_of[int(r.fold)]]
    if inside:
        raise CohortError(f"a validation probability of fold {inside[0][1]} belongs to one of its own training "
                          "patients (in-sample)", patient_id=inside[0][0])  # fmt: skip
    counts = val.groupby("patient_id")["fold"].nunique()
    twice = counts[counts > 1]
    if len(twice):
        raise CohortError("patient is validated in more than one fold", patient_id=str(twice.index[0]))
    dev = sorted({str(p) for f in splits["folds"] for p in f["val"]})
    missing = sorted(set(dev) - set(val["patient_id"].astype(str)))
    if missing:
        raise CohortError("development patient has no out-of-fold probability (validated in no fold)",
                          patient_id=missing[0])
    out = val.rename(columns={"fold": "source_fold"})[["patient_id", "source_fold", "prob", "lge"]]
    return out.assign(patient_id=out["patient_id"].astype(str)).set_index("patient_id").loc[dev].reset_index()


def stacking_table(patients: pd.DataFrame, splits: dict, fold: int) -> pd.DataFrame:
    """The image-model probability of every patient fold `fold`'s combined model fits on or predicts.

    Returns patient_id, split (train/val/test/external), source_fold, prob. Training patients get their
    out-of-fold probability (`out_of_fold`); the others fold `fold`'s own model's. Checked, not assumed:
    no returned probability comes from a model whose training patients include the patient.
    """
    roles = fold_patients(splits, fold)
    oof = out_of_fold(patients, splits).set_index("patient_id")
    frames = [oof.loc[roles["train"], ["source_fold", "prob"]].reset_index().assign(split="train")]
    own = patients[patients["fold"] == int(fold)]
    for split in ("val", "test", "external"):
        rows = own[own["split"] == split]
        lost = sorted(set(roles[split]) - set(rows["patient_id"].astype(str)))
        if lost:
            raise CohortError(f"fold {fold} {split}: no image-model probability", patient_id=lost[0])
        frames.append(rows.assign(source_fold=int(fold), patient_id=rows["patient_id"].astype(str))[
            ["patient_id", "source_fold", "prob"]].assign(split=split))
    table = pd.concat(frames, ignore_index=True)[["patient_id", "split", "source_fold", "prob"]]
    train_of = {int(f["fold"]): set(map(str, f["train"])) for f in splits["folds"]}
    seen = [p for p, g in zip(table["patient_id"], table["source_fold"], strict=True) if p in train_of[int(g)]]
    if seen:
        raise CinescarError(f"in-sample image probability would reach the combined model of fold {fold} "
                            f"(patient {seen[0]})")
    return table


def design(data: ClinicalData, stack: pd.DataFrame) -> pd.DataFrame:
    """Clinical variables + the image logit, one row per row of `stack` (same order)."""
    X = _rows(data.X, stack["patient_id"].tolist(), "combined-model").reset_index(drop=True)
    return X.assign(**{IMAGE_COLUMN: logit(stack["prob"].to_numpy())})


def fit_fold(data: ClinicalData, patients: pd.DataFrame, splits: dict, fold: int,
             settings: ClinicalSettings) -> tuple[Pipeline, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Fit fold `fold`'s combined model on its training patients (out-of-fold image probabilities).

    Returns (pipeline, patient probabilities [patient_id, split, prob] of val/test/external, the stacking
    table used — kept so that a test or a reader can see where each image probability came from).
    """
    stack = stacking_table(patients, splits, fold)
    train = stack[stack["split"] == "train"]
    y = data.lge.loc[train["patient_id"]].to_numpy()
    if np.isnan(y.astype(float)).any():
        raise CinescarError(f"fold {fold}: a training patient has no LGE label in the manifest")
    model = fit_patients(design(data, train), y, settings)
    rest = stack[stack["split"] != "train"].reset_index(drop=True)
    prob = model.predict_proba(design(data, rest).to_numpy(dtype=float))[:, 1]
    return model, rest[["patient_id", "split"]].assign(prob=prob), stack
