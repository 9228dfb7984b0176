"""The screening decision: image probabilities → patient probability → cut-off → LGE scan or not.

Rules (paper Methods, "Statistics", with the reference code's optimism removed):
- a patient's probability is the **maximum** over its images (the paper: positive if at least one image
  exceeds the cut-off — the same decision as thresholding the maximum);
- a patient is positive when its probability is **≥** the cut-off (ties are positive: a screening test
  errs towards scanning);
- the cut-off is the **highest** threshold whose patient-level sensitivity on the development patients
  it is set on (pooled out of fold by default, see below; a fold's own `val_all` for the per-fold rows)
  reaches the target (default 0.90); the highest such threshold gives the highest specificity among those
  reaching the target. With `screening.sensitivity_confidence` it is instead the highest threshold that
  reaches the target on *new* patients with that confidence (`tolerance_rank`, Beta law). It is then applied unchanged to the internal test and
  external cohorts, and the sensitivity actually reached there is reported;
- the **default** cut-off (`screening.operating_point: pooled`) is set once per model on the *pooled*
  out-of-fold validation predictions of all development patients (each is a validation patient of exactly
  one fold, so every development patient counts once), with the same rule; it is applied unchanged to every
  fold's test and external patients and to the final model. One fold's 9–10 validation patients with 3–4
  LGE+ make the per-fold cut-off the lowest LGE+ probability of that fold — one patient decides it; pooling
  lets all development patients decide. Rows at this cut-off carry `operating_point = pooled`; the per-fold
  cut-offs are kept (`validation`) for Table 3;
- the paper's variant — cut-off chosen on the evaluated cohort itself — is computed only when
  `screening.cutoff_on_test` is true and labelled `optimistic` wherever it appears.

The final model (`final_probabilities`, `evaluation.final_model`): by default the mean of the fold models'
patient probabilities on each test cohort (decided without looking at any test patient); the paper's rule
(the fold with the best internal-test AUC) is kept as `best_on_test` and labelled optimistic.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cinescar.evaluation.metrics import METRIC_COLUMNS, screening_metrics
from cinescar.errors import CinescarError, CohortError
from cinescar.screening_rule import PATIENT_AGGREGATE
from cinescar.predictions import PREDICTION_COLUMNS, SPLITS, check_predictions, patient_probabilities  # noqa: F401 (re-exported)

VALIDATION = "validation"
POOLED = "pooled"
OPTIMISTIC = "optimistic"
OPERATING_POINT_LABELS = {
    POOLED: "cut-off from the pooled out-of-fold validation patients (all development patients)",
    VALIDATION: "cut-off from the fold's own validation patients",
    OPTIMISTIC: "optimistic: cut-off chosen on the evaluated cohort itself (the paper's variant)",
}
OPERATING_POINT_OF_SETTING = {"pooled": POOLED, "per_fold": VALIDATION}
"""`screening.operating_point` -> the `operating_point` label of the default rows."""
FINAL_FOLD = -1
"""`fold` value of the final model's rows in the patients and metrics tables (mean rule: not one fold)."""
MEAN_RULE = "mean"
BEST_ON_TEST_RULE = "best_on_test"
FINAL_RULE_LABELS = {
    MEAN_RULE: "mean of the fold models' patient probabilities",
    BEST_ON_TEST_RULE: "optimistic (chosen on the internal test cohort): the fold with the highest internal-test AUC",
}


def tolerance_rank(m: int, target_sensitivity: float, confidence: float) -> int:
    """How many of m LGE+ patients the cut-off must call positive so that the *population* sensitivity
    reaches the target with probability ≥ `confidence` (m when even that does not reach it).

    Why: the cut-off at the j-th largest of m LGE+ probabilities leaves a population sensitivity
    S = P(X ≥ t) distributed as Beta(j, m − j + 1) (the order statistic of a continuous score; David &
    Nagaraja, Order Statistics, §2.1). The point rule j = ⌈target·m⌉ gives E[S] ≈ target and P(S ≥ target)
    ≈ 0.5 (m = 57: E = 0.897, P = 0.51). The tolerance rule takes the smallest j (highest cut-off) with
    P(S ≥ target) = 1 − I_target(j, m − j + 1) ≥ confidence — a one-sided (target, confidence) tolerance bound.
    """
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise CinescarError(f"screening.sensitivity_confidence must be in (0, 1), got {confidence}")
    j = np.arange(1, m + 1)
    ok = np.flatnonzero(stats.beta.sf(target_sensitivity, j, m - j + 1) >= confidence)
    return int(j[ok[0]]) if ok.size else m


def sensitivity_confidence(m: int, j: int, target_sensitivity: float) -> float:
    """P(population sensitivity ≥ target) of a cut-off that calls j of m LGE+ patients positive (Beta law)."""
    from scipy import stats

    return float(stats.beta.sf(target_sensitivity, j, m - j + 1))


def choose_cutoff(y_true: np.ndarray, prob: np.ndarray, target_sensitivity: float = 0.90,
                  confidence: float | None = None) -> float:  # fmt: skip
    """Highest cut-off t with sensitivity(prob ≥ t) ≥ target on these patients (`confidence` None), or the
    highest cut-off that reaches the target on *new* patients with that confidence (`tolerance_rank`).

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
    if confidence is not None:
        need = max(need, tolerance_rank(pos.size, target_sensitivity, confidence))
    return float(pos[need - 1])


def pooled_validation(patients: pd.DataFrame) -> pd.DataFrame:
    """The validation rows of all folds, one per development patient (each validated in exactly one fold).

    Raises when a patient is a validation patient of more than one fold: pooling would count it twice.
    """
    val = patients[patients["split"] == "val"]
    if val.empty:
        raise CinescarError("no validation patients to set the pooled cut-off on")
    twice = val.groupby("patient_id")["fold"].nunique()
    if (twice > 1).any():
        raise CohortError("patient is a validation patient of more than one fold; the pooled out-of-fold "
                          "predictions would count it twice", patient_id=str(twice[twice > 1].index[0]))
    return val.sort_values("patient_id").reset_index(drop=True)


def pooled_cutoff(patients: pd.DataFrame, target_sensitivity: float = 0.90, confidence: float | None = None) -> float:
    """The cut-off rule of `choose_cutoff` on the pooled out-of-fold validation patients of all folds."""
    val = pooled_validation(patients)
    return choose_cutoff(val["lge"].to_numpy(), val["prob"].to_numpy(), target_sensitivity, confidence)


def evaluated_splits(patients: pd.DataFrame) -> list[str]:
    """The cohorts a model is evaluated on besides validation, in report order (test, then the others)."""
    present = [str(s) for s in dict.fromkeys(patients["split"]) if str(s) != "val"]
    return sorted(present, key=lambda s: (s != "test", s))


def screening_table(
    patients: pd.DataFrame,
    target_sensitivity: float = 0.90,
    cutoff_on_test: bool = False,
    ci_level: float = 0.95,
    pooled: float | None = None,
    confidence: float | None = None,
) -> pd.DataFrame:
    """Operating points and metrics of one model for every fold and cohort.

    `patients` is `patient_probabilities(...)` of one model. Rows: (fold, cohort ∈ val/test/external,
    operating_point, cutoff, metrics...). The per-fold `validation` cut-off is always computed; with
    `pooled` (the pooled out-of-fold cut-off, `pooled_cutoff`) every fold and cohort is also evaluated at
    it (`pooled` rows); `optimistic` rows (cut-off on the test/external cohort itself) only when
    `cutoff_on_test` is true.
    """
    rows = []
    for fold, pf in patients.groupby("fold", sort=True):
        val = pf[pf["split"] == "val"]
        if val.empty:
            raise CinescarError(f"fold {fold}: no validation patients to set the cut-off on")
        cutoff = choose_cutoff(val["lge"].to_numpy(), val["prob"].to_numpy(), target_sensitivity, confidence)
        for cohort in ["val", *evaluated_splits(pf)]:
            pc = pf[pf["split"] == cohort]
            if pc.empty:
                continue
            y, p = pc["lge"].to_numpy(), pc["prob"].to_numpy()
            points = ([(POOLED, float(pooled))] if pooled is not None else []) + [(VALIDATION, cutoff)]
            if cutoff_on_test and cohort != "val":
                if y.sum() == 0:
                    raise CinescarError(f"fold {fold}, cohort {cohort}: no LGE+ patients for the optimistic cut-off")
                points.append((OPTIMISTIC, choose_cutoff(y, p, target_sensitivity)))
            for label, cut in points:
                m = screening_metrics(y, p, cut, ci_level=ci_level)
                rows.append({"fold": int(fold), "cohort": cohort, "operating_point": label, "cutoff": cut, **m})
    return pd.DataFrame(rows, columns=["fold", "cohort", "operating_point", "cutoff", *METRIC_COLUMNS])


def final_probabilities(patients: pd.DataFrame, rule: str = MEAN_RULE, fold: int | None = None) -> pd.DataFrame:
    """Patient probabilities of a final model on every evaluated cohort: split, patient_id, lge, prob, n_folds.

    `mean`: the mean over the fold models of each patient's probability (every fold model predicts every
    test and external patient; a patient missing from a fold is an error, not a smaller mean). `best_on_test`:
    the rows of `fold`.
    """
    rows = patients[patients["split"] != "val"]
    if rule == BEST_ON_TEST_RULE:
        if fold is None:
            raise CinescarError("the best_on_test final model needs its fold")
        out = rows[rows["fold"] == int(fold)].assign(n_folds=1)
        return out[["split", "patient_id", "lge", "prob", "n_folds"]].reset_index(drop=True)
    if rule != MEAN_RULE:
        raise CinescarError(f"unknown final-model rule {rule!r} (choose {MEAN_RULE} or {BEST_ON_TEST_RULE})")
    n_folds = rows["fold"].nunique()
    g = rows.groupby(["split", "patient_id"], sort=True)
    out = g.agg(lge=("lge", "first"), prob=("prob", "mean"), n_folds=("fold", "nunique")).reset_index()
    short = out[out["n_folds"] != n_folds]
    if len(short):
        raise CohortError(f"{short.iloc[0]['split']} patient is predicted by {short.iloc[0]['n_folds']} of "
                          f"{n_folds} fold models; the mean final model needs all", patient_id=str(short.iloc[0]["patient_id"]))
    return out[["split", "patient_id", "lge", "prob", "n_folds"]]
