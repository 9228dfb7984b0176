"""The study's evaluation: from every model's image predictions to every number of the report.

`evaluate_study` reads the predictions of every model of `cinescar.models` the workflow made — the paper's
Radiomics, DL and DL-Radiomics, the clinical baseline, the combined image + clinical models and the two
shortcut controls — all in the same contract (architecture.md, "Predictions"). `build_study` checks that
each covers exactly the images the splits say it must, aggregates to patients, sets the cut-offs (pooled
out-of-fold by default, per fold for Table 3), forms the final models, and returns a `Study`: the one place
the later statistics read from (patients, metrics, operating points, final models). `evaluate_study` then
writes (under `out_dir`):

| file | content |
|---|---|
| `patients.csv` | patient-level probabilities (model, fold, split, patient_id, lge, prob, n_images); fold −1 = final model |
| `metrics.csv` | per model, fold, cohort (val/test/external) and operating point: cut-off and all metrics |
| `operating_points.csv/.json` | per model the pooled out-of-fold cut-off, what it reached on validation, the per-fold cut-offs, what pooling costs |
| `final_models.json` | per model the final model: rule (mean of folds / best on test), its cut-off, test/external AUC |
| `final_patients.csv` | the final models' patient probabilities on test and external |
| `delong.csv` | DeLong tests between every pair of models, per fold and cohort, and for the final models |
| `incremental.csv` | every model against the clinical one: AUC difference, DeLong CI and p (test, external, pooled validation) |
| `roc.csv` | ROC curves with 95 % bootstrap bands of the final models (internal test, external) |
| `table1.csv` … `table4.csv` | the paper's Tables 1–4; `table4_folds.csv` every fold on the external cohort |
| `table_s1.csv` | the DL-Radiomics classifier comparison (copied from results/fusion/classifiers.csv) |
| `table_s2.csv`, `table_s3.csv` | recurrence of selected features across folds (radiomics, fusion) |
| `summary.json` | headline numbers, the final-model rule, notes on models not available, incremental-value verdicts |

and logs the numbers to MLflow (stage=evaluation).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from itertools import combinations
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cinescar.config import schema_default
from cinescar.errors import CinescarError, CohortError
from cinescar.evaluation.aligned import aligned as _aligned
from cinescar.evaluation.delong import delong_test
from cinescar.evaluation.metrics import auc_or_nan, roc_with_band, screening_metrics
from cinescar.evaluation.screening import (
    BEST_ON_TEST_RULE,
    FINAL_FOLD,
    FINAL_RULE_LABELS,
    MEAN_RULE,
    OPERATING_POINT_OF_SETTING,
    OPTIMISTIC,
    POOLED,
    VALIDATION,
    choose_cutoff,
    evaluated_splits,
    sensitivity_confidence,
    final_probabilities,
    patient_probabilities,
    pooled_validation,
    screening_table,
)
from cinescar.evaluation.tables import (
    feature_recurrence,
    final_model_table,
    reproducibility_table,
    study_cohort_tables,
)
from cinescar.models import CLINICAL, COMBINED, IMAGE_MODELS, MODEL_LABELS, MODELS
from cinescar.predictions import HELD_OUT, SPLIT_TO_ROLE

log = logging.getLogger(__name__)
DELONG_COLUMNS = ["scope", "cohort", "model_a", "fold_a", "model_b", "fold_b", "n_patients",
                  "auc_a", "auc_b", "diff", "se", "z", "p"]  # fmt: skip
INCREMENTAL_COLUMNS = ["model", "reference", "cohort", "scope", "n_patients", "n_pos", "auc", "auc_reference",
                       "diff", "diff_low", "diff_high", "p"]  # fmt: skip


def default_operating_point(cfg: dict) -> str:
    """The `operating_point` label of the default rows (`screening.operating_point`: pooled or per_fold)."""
    return OPERATING_POINT_OF_SETTING[str(cfg.get("screening", {}).get("operating_point", "pooled"))]


def check_coverage(pred: pd.DataFrame, index: pd.DataFrame, splits: dict, model: str,
                   source: str | Path) -> int:  # fmt: skip
    """Check each fold's val_all/test/external images against the splits; return the number not predicted.

    An unexpected image, or a patient with no predicted image at all, is an error naming the patient and the
    predictions file. Single images may legitimately be absent (radiomics `failure_policy: exclude` leaves
    out images whose extraction failed); they are counted, logged, and reported in summary.json.
    """
    from cinescar.cohort.splits import fold_images

    folds = [int(f["fold"]) for f in splits["folds"]]
    got_folds = sorted(int(f) for f in pred["fold"].unique())
    if got_folds != sorted(folds):
        raise CinescarError(f"{model} predictions {source} hold folds {got_folds}, the splits have {sorted(folds)}")
    n_missing = 0
    for fold in folds:
        roles = fold_images(index, splits, fold)
        pf = pred[pred["fold"] == fold]
        for split, role in SPLIT_TO_ROLE.items():
            want = roles[role].assign(image_id=roles[role]["image_id"].astype(str))
            have = pf[pf["split"] == split]
            extra = sorted(set(have["image_id"]) - set(want["image_id"]))
            if extra:
                pid = str(have.loc[have["image_id"] == extra[0], "patient_id"].iloc[0])
                raise CohortError(f"{model} fold {fold} split {split}: image {extra[0]} is predicted but is not "
                                  f"a {role} image of this fold ({len(extra)} such images)", patient_id=pid,
                                  path=source)  # fmt: skip
            lost = sorted(set(want["patient_id"].astype(str)) - set(have["patient_id"].astype(str)))
            if lost:
                raise CohortError(f"{model} fold {fold} split {split}: no image of this patient is predicted "
                                  f"({len(lost)} such patients)", patient_id=lost[0], path=source)  # fmt: skip
            missing = want.loc[~want["image_id"].isin(set(have["image_id"])), "image_id"]
            if len(missing):
                n_missing += len(missing)
                log.warning("%s fold %d split %s: %d image(s) not predicted, e.g. %s; their patients' probability "
                            "is the maximum over the remaining images", model, fold, split, len(missing),
                            missing.head(3).tolist())  # fmt: skip
    return n_missing


# ------------------------------------------------------------------------------ operating points
def operating_point_summary(patients: pd.DataFrame, pooled: float, target: float, ci_level: float,
                            confidence: float | None = None) -> dict:  # fmt: skip
    """What the pooled cut-off reached on the pooled validation patients, and what pooling costs.

    Fold models can be calibrated differently (one fold's probabilities all higher than another's); a single
    cut-off then sits well for some folds and badly for others, and the pooled out-of-fold AUC falls below
    the folds' own AUCs. `confidence_reached` is P(population sensitivity ≥ target) of this cut-off under the
    Beta law of the empirical quantile (screening.tolerance_rank): ≈ 0.5 for the point rule, ≥
    `screening.sensitivity_confidence` for the tolerance rule. The pooled AUC averages the concordance of *every* LGE+/LGE− pair; `within_fold_auc`
    averages only the pairs of the same fold (each fold's AUC weighted by its pairs), where calibration
    differences between folds cannot matter. `pooling_cost` = within_fold_auc − pooled_oof_auc is what mixing
    the folds' scales costs; `median_fold_auc` (the issue's comparison) is kept beside it, but with a
    few LGE+ patients per fold it also carries the small-sample spread of the fold AUCs.
    """
    val = pooled_validation(patients)
    y, p = val["lge"].to_numpy(), val["prob"].to_numpy()
    m = screening_metrics(y, p, pooled, ci_level=ci_level)
    fold_auc, per_fold, fold_mean_prob, pairs = {}, {}, {}, {}
    for fold, vf in val.groupby("fold"):
        fold_auc[int(fold)] = auc_or_nan(vf["lge"].to_numpy(), vf["prob"].to_numpy())
        pairs[int(fold)] = int(vf["lge"].sum()) * int((1 - vf["lge"]).sum())
        per_fold[int(fold)] = choose_cutoff(vf["lge"].to_numpy(), vf["prob"].to_numpy(), target, confidence)
        fold_mean_prob[int(fold)] = float(vf["prob"].mean())
    finite = [a for a in fold_auc.values() if np.isfinite(a)]
    median_fold = float(np.median(finite)) if finite else float("nan")
    weights = {f: pairs[f] for f, a in fold_auc.items() if np.isfinite(a) and pairs[f]}
    within = (sum(fold_auc[f] * w for f, w in weights.items()) / sum(weights.values())) if weights else float("nan")
    n_called = int(np.sum(p[y == 1] >= pooled))
    rule = ("highest cut-off whose sensitivity on the pooled out-of-fold validation patients reaches the target"
            if confidence is None else
            f"highest cut-off that reaches the target sensitivity on new patients with confidence {confidence:g} "
            "(Beta law of the empirical quantile over the pooled out-of-fold LGE+ patients)")  # fmt: skip
    return {
        "operating_point": POOLED, "cutoff": float(pooled), "target_sensitivity": float(target),
        "rule": rule, "sensitivity_confidence": confidence, "lge_pos_called": n_called,
        "confidence_reached": sensitivity_confidence(int(y.sum()), n_called, target) if y.sum() else float("nan"),
        "n_patients": m["n_patients"], "n_pos": m["n_pos"], "n_neg": m["n_neg"],
        "sensitivity": m["sensitivity"], "specificity": m["specificity"], "ppv": m["ppv"], "npv": m["npv"],
        "pooled_oof_auc": m["auc"], "pooled_oof_auc_ci_low": m["auc_ci_low"], "pooled_oof_auc_ci_high": m["auc_ci_high"],
        "median_fold_auc": median_fold, "within_fold_auc": float(within), "pooling_cost": float(within - m["auc"]),
        "fold_val_auc": fold_auc, "fold_cutoffs": per_fold, "fold_mean_val_prob": fold_mean_prob,
    }  # fmt: skip


# ----------------------------------------------------------------------------------- final models
def choose_best_on_test(metrics: pd.DataFrame, model: str) -> int:
    """The paper's rule: the fold with the highest internal-test AUC (ties → lowest fold)."""
    m = metrics[(metrics["model"] == model) & (metrics["cohort"] == "test") & (metrics["fold"] >= 0)]
    m = m.drop_duplicates("fold")  # AUC does not depend on the operating point
    if m.empty:
        raise CinescarError(f"{model}: no internal-test patients to choose the best fold on")
    # equal AUCs (same rational value, different float rounding) are a tie, resolved by the lowest fold
    m = m.assign(auc_r=m["auc"].round(12)).sort_values(["auc_r", "fold"], ascending=[False, True])
    return int(m.iloc[0]["fold"])


def final_model(patients: pd.DataFrame, metrics: pd.DataFrame, model: str, rule: str, op_summary: dict,
                default_op: str) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """The final model's description (final_models.json) and its patient rows (fold = FINAL_FOLD for the mean).

    `mean`: the mean of the fold models' patient probabilities, at the pooled cut-off (the mean model has no
    fold of its own, so the per-fold cut-off does not apply to it). `best_on_test`: the paper's fold, at the
    default operating point's cut-off of that fold; optimistic, and labelled so.
    """
    folds = sorted(int(f) for f in patients["fold"].unique() if int(f) >= 0)
    if rule == MEAN_RULE:
        fold, cutoff, op = FINAL_FOLD, op_summary["cutoff"], POOLED
        rows = final_probabilities(patients, MEAN_RULE)
        n_img = patients[patients["split"] != "val"].groupby(["split", "patient_id"])["n_images"].max()
        rows = rows.assign(fold=FINAL_FOLD, n_images=n_img.reindex(pd.MultiIndex.from_frame(
            rows[["split", "patient_id"]])).to_numpy())  # fmt: skip
        used = folds
    elif rule == BEST_ON_TEST_RULE:
        fold = choose_best_on_test(metrics, model)
        op = default_op
        cutoff = op_summary["cutoff"] if op == POOLED else op_summary["fold_cutoffs"][fold]
        rows = pd.DataFrame(columns=patients.columns)  # already in `patients` under its own fold
        used = [fold]
    else:
        raise CinescarError(f"evaluation.final_model must be {MEAN_RULE} or {BEST_ON_TEST_RULE}, not {rule!r}")
    info = {"fold": int(fold), "folds": used, "rule": rule, "rule_label": FINAL_RULE_LABELS[rule],
            "optimistic": rule == BEST_ON_TEST_RULE, "operating_point": op, "cutoff": float(cutoff),
            "validation": {k: op_summary[k] for k in ("n_patients", "n_pos", "sensitivity", "specificity")}
            | {"source": "pooled out-of-fold validation patients, each scored by the one fold model that did not "
                         "train on it: the fold models' figure at this cut-off, not the shipped mean model's (its own "
                         "are its test and external rows)",
               "confidence_reached": op_summary.get("confidence_reached")}}  # fmt: skip
    return info, rows


def final_metrics_rows(patients: pd.DataFrame, info: dict, target: float, cutoff_on_test: bool,
                       ci_level: float) -> pd.DataFrame:  # fmt: skip
    """metrics rows of the mean final model (fold = FINAL_FOLD) on every evaluated cohort."""
    pf = patients[patients["fold"] == FINAL_FOLD]
    rows = []
    for cohort in evaluated_splits(pf):
        pc = pf[pf["split"] == cohort]
        y, p = pc["lge"].to_numpy(), pc["prob"].to_numpy()
        points = [(POOLED, info["cutoff"])]
        if cutoff_on_test and y.sum() > 0:
            points.append((OPTIMISTIC, choose_cutoff(y, p, target)))
        for op, cut in points:
            rows.append({"fold": FINAL_FOLD, "cohort": cohort, "operating_point": op, "cutoff": float(cut),
                         **screening_metrics(y, p, cut, ci_level=ci_level)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ the study
@dataclass
class Study:
    """Everything the tables, statistics and report are computed from (the hook for later analyses).

    `patients[model]`: fold-level patient rows (fold ≥ 0; split val/test/external) plus the mean final
    model's rows (fold = FINAL_FOLD, test/external). `metrics`: one row per model, fold, cohort and
    operating point. `operating_points[model]`: the pooled cut-off and what it reached (operating_point_summary).
    `final[model]`: the final model (final_models.json). `notes[model]`: a sentence per model that is not
    available on this cohort, or that says which inputs it used.
    """

    patients: dict[str, pd.DataFrame]
    metrics: pd.DataFrame
    operating_points: dict[str, dict]
    final: dict[str, dict]
    default_operating_point: str
    final_rule: str
    notes: dict[str, str] = field(default_factory=dict)
    not_available: dict[str, str] = field(default_factory=dict)
    not_predicted: dict[str, int] = field(default_factory=dict)


def _read_predictions(path: str | Path) -> pd.DataFrame:
    pred = pd.read_parquet(path)
    return pred.assign(image_id=pred["image_id"].astype(str), patient_id=pred["patient_id"].astype(str),
                       fold=pred["fold"].astype(int))


def build_study(predictions: dict[str, str | Path], index: pd.DataFrame, splits: dict, cfg: dict,
                statuses: dict[str, str | Path] | None = None) -> Study:  # fmt: skip
    """Patient probabilities, cut-offs, metrics and final models of every model with predictions.

    A model whose predictions table is empty (e.g. the clinical model of a cohort without clinical columns)
    is left out, with the sentence of its `status.json` (or a generic one) in `not_available`.
    """
    scr, ev = cfg.get("screening", {}), cfg.get("evaluation", {})
    target = float(scr.get("target_sensitivity", 0.90))
    optimistic = bool(scr.get("cutoff_on_test", False))
    confidence = scr.get("sensitivity_confidence")
    confidence = None if confidence is None else float(confidence)
    level = float(ev.get("ci_level", 0.95))
    rule = str(ev.get("final_model", MEAN_RULE))
    default_op = default_operating_point(cfg)
    notes, not_available, not_predicted = {}, {}, {}
    for model, path in (statuses or {}).items():
        if path is not None and Path(path).exists():
            notes[model] = str(json.loads(Path(path).read_text()).get("note", ""))
    patients: dict[str, pd.DataFrame] = {}
    frames, ops, final = [], {}, {}
    order = [m for m in MODELS if m in predictions] + [m for m in predictions if m not in MODELS]
    for model in order:
        pred = _read_predictions(predictions[model])
        if pred.empty:
            not_available[model] = notes.get(model) or f"{MODEL_LABELS.get(model, model)}: no predictions."
            log.warning("%s not evaluated: %s", model, not_available[model])
            continue
        pm = patient_probabilities(pred, source=predictions[model])
        not_predicted[model] = check_coverage(pred, index, splits, model, predictions[model])
        pooled = choose_cutoff(pooled_validation(pm)["lge"].to_numpy(), pooled_validation(pm)["prob"].to_numpy(),
                               target, confidence)
        ops[model] = operating_point_summary(pm, pooled, target, level, confidence)
        mm = screening_table(pm, target, optimistic, level, pooled=pooled, confidence=confidence).assign(model=model)
        info, final_rows = final_model(pm, mm, model, rule, ops[model], default_op)
        final[model] = info
        if len(final_rows):
            pm = pd.concat([pm, final_rows[pm.columns]], ignore_index=True)
            mm = pd.concat([mm, final_metrics_rows(pm, info, target, optimistic, level).assign(model=model)],
                           ignore_index=True)
        patients[model] = pm
        frames.append(mm)
    if not frames:
        raise CinescarError("no model has predictions to evaluate")
    metrics = pd.concat(frames, ignore_index=True)
    metrics = metrics[["model", *[c for c in metrics.columns if c != "model"]]]
    for model, info in final.items():
        for cohort in HELD_OUT:
            row = metrics[(metrics["model"] == model) & (metrics["fold"] == info["fold"])
                          & (metrics["cohort"] == cohort) & (metrics["operating_point"] == info["operating_point"])]  # fmt: skip
            info[f"{cohort}_auc"] = float(row["auc"].iloc[0]) if len(row) else None
    return Study(patients=patients, metrics=metrics, operating_points=ops, final=final,
                 default_operating_point=default_op, final_rule=rule, notes=notes, not_available=not_available,
                 not_predicted=not_predicted)  # fmt: skip


# ----------------------------------------------------------------------------- comparisons
def _delong_or_nan(y: np.ndarray, a: np.ndarray, b: np.ndarray, what: str) -> dict[str, float]:
    try:
        return delong_test(y, a, b).as_dict()
    except CinescarError as exc:  # too few patients of a class: the test is undefined, say why
        log.warning("DeLong %s not computed: %s", what, exc)
        return {k: float("nan") for k in ("auc_a", "auc_b", "diff", "se", "z", "p")}


def delong_table(patients: dict[str, pd.DataFrame], final_models: dict[str, dict]) -> pd.DataFrame:
    """DeLong tests between every pair of models: per fold (same fold for both) and for the final models."""
    rows = []
    models = list(patients)
    folds = sorted(f for f in set.intersection(*(set(p["fold"].unique()) for p in patients.values())) if f >= 0)
    scopes = [(f"fold {f}", {m: int(f) for m in models}) for f in folds]
    scopes.append(("final", {m: int(final_models[m]["fold"]) for m in models}))
    for scope, picks in scopes:
        for cohort in HELD_OUT:
            if not all(((p["split"] == cohort) & (p["fold"] == picks[m])).any() for m, p in patients.items()):
                continue
            y, scores = _aligned(patients, picks, cohort)
            for a, b in combinations(models, 2):
                res = _delong_or_nan(y, scores[a], scores[b], f"{scope} {cohort} {a} vs {b}")
                rows.append({"scope": scope, "cohort": cohort, "model_a": a, "fold_a": picks[a], "model_b": b,
                             "fold_b": picks[b], "n_patients": len(y), **res})  # fmt: skip
    return pd.DataFrame(rows, columns=DELONG_COLUMNS)


def _pooled_aligned(patients: dict[str, pd.DataFrame], models: list[str]) -> tuple[np.ndarray, dict]:
    """Labels and probabilities on the pooled out-of-fold validation patients of every model in `models`."""
    frames = {m: pooled_validation(patients[m][patients[m]["fold"] >= 0]).set_index("patient_id") for m in models}
    order = sorted(set.intersection(*(set(f.index) for f in frames.values())))
    y = frames[models[0]].loc[order, "lge"].to_numpy(dtype=int)
    return y, {m: f.loc[order, "prob"].to_numpy(dtype=float) for m, f in frames.items()}


def incremental_table(patients: dict[str, pd.DataFrame], final_models: dict[str, dict],
                      level: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """Every model against the clinical one on the same patients: AUC difference, DeLong CI and p.

    Cohorts: `test` and `external` with the final models, and `val` = the pooled out-of-fold validation
    patients (the fold models; a combined model's validation rows are only second-order out of fold, see
    cinescar.baselines.combined). The CI of the difference is DeLong's: diff ± z·SE (written here; the
    bootstrap interval of the difference, when computed, is in the statistics' own files).
    """
    if CLINICAL not in patients:
        return pd.DataFrame(columns=INCREMENTAL_COLUMNS)
    others = [m for m in patients if m != CLINICAL]
    z = stats.norm.ppf(0.5 + level / 2.0)
    rows = []
    scopes: list[tuple[str, str, tuple[np.ndarray, dict]]] = []
    for cohort in HELD_OUT:
        picks = {m: int(final_models[m]["fold"]) for m in patients}
        if all(((p["split"] == cohort) & (p["fold"] == picks[m])).any() for m, p in patients.items()):
            scopes.append((cohort, "final", _aligned(patients, picks, cohort)))
    scopes.append(("val", "pooled out of fold", _pooled_aligned(patients, [CLINICAL, *others])))
    for cohort, scope, (y, scores) in scopes:
        for m in others:
            res = _delong_or_nan(y, scores[m], scores[CLINICAL], f"{cohort} {m} vs clinical")
            lo, hi = res["diff"] - z * res["se"], res["diff"] + z * res["se"]
            rows.append({"model": m, "reference": CLINICAL, "cohort": cohort, "scope": scope, "n_patients": len(y),
                         "n_pos": int(y.sum()), "auc": res["auc_a"], "auc_reference": res["auc_b"],
                         "diff": res["diff"], "diff_low": lo, "diff_high": hi, "p": res["p"]})  # fmt: skip
    return pd.DataFrame(rows, columns=INCREMENTAL_COLUMNS)


def incremental_verdicts(table: pd.DataFrame, alpha: float = 0.05, level: float = 0.95,
                         primary: dict | None = None) -> list[str]:  # fmt: skip
    """The primary comparison's sentence first (cinescar.evaluation.primary), then one *descriptive* sentence
    per image model: its combined model against the clinical one, DeLong Wald interval and unadjusted p.

    Only the primary comparison carries a verdict; the rest state estimates (one verdict rule, issue 24).
    """
    from cinescar.evaluation.primary import primary_sentence

    out = [primary_sentence(primary)] if primary is not None else []
    for image in IMAGE_MODELS:
        combined = COMBINED[image]
        parts = []
        for cohort in ("external", "test"):
            r = table[(table["model"] == combined) & (table["cohort"] == cohort)]
            if r.empty or not np.isfinite(r["diff"].iloc[0]):
                continue
            r = r.iloc[0]
            if primary and primary.get("available") and primary["model"] == combined and primary["cohort"] == cohort:
                continue  # stated above, with its verdict
            parts.append(f"{'external' if cohort == 'external' else 'internal test'} cohort: AUC {r['auc']:.2f} vs "
                         f"{r['auc_reference']:.2f}, difference {r['diff']:+.2f}, DeLong Wald {100 * level:.0f} % CI "
                         f"{r['diff_low']:+.2f} to {r['diff_high']:+.2f}, unadjusted p = {r['p']:.3f}")
        if parts:
            out.append(f"Descriptive: {MODEL_LABELS[combined]} vs clinical — " + "; ".join(parts) + ".")
    return out


def roc_table(patients: dict[str, pd.DataFrame], final_models: dict[str, dict], n_boot: int, level: float,
              seed: int) -> pd.DataFrame:  # fmt: skip
    """ROC curves (fixed FPR grid) with bootstrap bands of the final models on test and external."""
    frames = []
    for model, p in patients.items():
        fold = int(final_models[model]["fold"])
        for cohort in HELD_OUT:
            pc = p[(p["fold"] == fold) & (p["split"] == cohort)]
            if pc.empty or pc["lge"].nunique() < 2:
                continue
            band = roc_with_band(pc["lge"].to_numpy(), pc["prob"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
            frames.append(band.assign(model=model, fold=fold, cohort=cohort))
    cols = ["model", "fold", "cohort", "fpr", "tpr", "tpr_low", "tpr_high"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    # full precision: a cut-off read back from the CSV must classify the patient at the cut-off the same way
    df.to_csv(path, index=False)


def operating_points_table(ops: dict[str, dict]) -> pd.DataFrame:
    """operating_points.csv: one row per model (the dict-valued per-fold entries flattened to columns)."""
    rows = []
    for model, o in ops.items():
        row = {"model": model, **{k: v for k, v in o.items() if not isinstance(v, dict)}}
        for key in ("fold_val_auc", "fold_cutoffs", "fold_mean_val_prob"):
            row.update({f"{key}_{f}": v for f, v in o[key].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_study(
    predictions: dict[str, str | Path],
    index_path: str | Path,
    splits_path: str | Path,
    manifest_path: str | Path | None,
    outputs: Mapping[str, str | Path],
    cfg: dict,
    selected_features: dict[str, tuple[str | Path, str | Path | None]] | None = None,
    fusion_classifiers: str | Path | None = None,
    fusion_choice: str | Path | None = None,
    statuses: dict[str, str | Path] | None = None,
    log_run: RunSink | None = None,
) -> dict[str, Path]:
    """Run the whole evaluation and write its files; returns {name: path} of what was written.

    `outputs` maps each file's name (`metrics`, `table1`, ..., `evidence`, `metrics_ci`, ...) to its path: the
    `evaluate` rule's declared outputs (`cinescar.evaluation.run.evaluate_job` passes them), so the names live in
    the rule only.

    `log_run(name, record)` receives what goes to MLflow (the job layer, `cinescar.evaluation.run`, opens the
    runs: no module below it imports tracking); None logs nothing.

    `predictions` maps model names (cinescar.models) to predictions.parquet files; `statuses` the baseline
    models to their status.json (the sentence shown when a model is not available on this cohort).
    `selected_features` maps "radiomics"/"fusion" to (selected_features.csv, choice JSON holding "k").
    `fusion_classifiers` (results/fusion/classifiers.csv) and `fusion_choice` (choice.json) are copied into
    `table_s1.csv` and summary.json, so every number of the report sits under `out_dir`.
    """
    from cinescar.cohort.contract import read_manifest
    from cinescar.cohort.splits import load_splits

    ev = cfg.get("evaluation", {})
    level = float(ev.get("ci_level", 0.95))
    alpha = float(ev.get("alpha", 0.05))
    for path in outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    index = pd.read_parquet(index_path)
    splits = load_splits(splits_path)
    study = build_study(predictions, index, splits, cfg, statuses)
    patients, metrics, final = study.patients, study.metrics, study.final
    per_fold = metrics[metrics["fold"] >= 0]

    files: dict[str, Path] = {}

    def _csv(name: str, df: pd.DataFrame) -> None:
        files[name] = Path(outputs[name])
        _write_csv(df, files[name])

    _csv("patients", pd.concat([p.assign(model=m) for m, p in patients.items()], ignore_index=True)[
        ["model", "fold", "split", "patient_id", "lge", "prob", "n_images"]])
    _csv("metrics", metrics)
    _csv("operating_points", operating_points_table(study.operating_points))
    files["operating_points_json"] = Path(outputs["operating_points_json"])
    files["operating_points_json"].write_text(json.dumps(study.operating_points, indent=2, default=float))
    files["final_models"] = Path(outputs["final_models"])
    files["final_models"].write_text(json.dumps(final, indent=2))
    _csv("final_patients", pd.concat(
        [p[p["fold"] == final[m]["fold"]].assign(model=m, rule=final[m]["rule"]) for m, p in patients.items()],
        ignore_index=True)[["model", "rule", "fold", "split", "patient_id", "lge", "prob"]])  # fmt: skip
    delong = delong_table(patients, final)
    _csv("delong", delong)
    incremental = incremental_table(patients, final, level)
    _csv("incremental", incremental)
    _csv("roc", roc_table(patients, final, int(ev.get("n_bootstrap", 1000)), level, int(cfg.get("seed", schema_default("seed")))))

    manifest = None
    if manifest_path is not None and Path(manifest_path).exists():
        manifest = read_manifest(Path(manifest_path).parent)
        table1, table2 = study_cohort_tables(manifest, splits, alpha)
    else:
        log.warning("no manifest at %s: cohort tables are empty", manifest_path)
        table1 = table2 = pd.DataFrame()
    _csv("table1", table1)
    _csv("table2", table2)
    _csv("table3", reproducibility_table(per_fold, "test"))
    _csv("table4", final_model_table(metrics, final, "external"))
    _csv("table4_folds", reproducibility_table(per_fold, "external"))
    final_metrics = pd.concat([final_model_table(metrics, final, c).assign(cohort=c) for c in HELD_OUT],
                              ignore_index=True)
    if not final_metrics.empty:
        final_metrics = final_metrics.assign(rule=final_metrics["model"].map(lambda m: final[m]["rule"]),
                                             optimistic=final_metrics["model"].map(lambda m: final[m]["optimistic"]))
    _csv("final_metrics", final_metrics)
    for name, key in (("table_s2", "radiomics"), ("table_s3", "fusion")):
        csv_path, choice_path = (selected_features or {}).get(key, (None, None))
        if csv_path is not None and Path(csv_path).exists():
            k = json.loads(Path(choice_path).read_text())["k"] if choice_path and Path(choice_path).exists() else None
            _csv(name, feature_recurrence(pd.read_csv(csv_path), k=k, n_folds=len(splits["folds"])))
        else:
            _csv(name, pd.DataFrame(columns=["feature", "kind", "n_folds", "share", "folds"]))

    if fusion_classifiers is not None and Path(fusion_classifiers).exists():
        _csv("table_s1", pd.read_csv(fusion_classifiers))
    else:
        _csv("table_s1", pd.DataFrame(columns=["classifier", "k", "mean", "sd", "chosen"]))
    choice = json.loads(Path(fusion_choice).read_text()) if fusion_choice and Path(fusion_choice).exists() else None

    # --- evidence (issue 12b): intervals, calibration, utility, subgroups, external cohorts; adds files only
    from cinescar.evaluation.evidence import evidence_tables

    from cinescar.evaluation.primary import multiplicity_sentence, primary_comparison

    primary = primary_comparison(cfg, patients, final)
    files.update(evidence_tables(patients, metrics, final, manifest, index, cfg, outputs, primary=primary,
                                 log_run=log_run))
    # --- end of evidence (issue 12b)

    summary = {
        "fusion_choice": choice,
        "target_sensitivity": float(cfg.get("screening", {}).get("target_sensitivity", 0.90)),
        "cutoff_on_test": bool(cfg.get("screening", {}).get("cutoff_on_test", False)),
        "default_operating_point": study.default_operating_point,
        "final_model_rule": study.final_rule,
        "final_model_rule_label": FINAL_RULE_LABELS[study.final_rule],
        "final_models": final,
        "models": list(patients),
        "model_notes": study.notes,
        "models_not_available": study.not_available,
        "images_not_predicted": study.not_predicted,
        "pooling_cost": {m: o["pooling_cost"] for m, o in study.operating_points.items()},
        "primary_comparison": primary,
        "multiplicity": multiplicity_sentence(
            len(delong) + len(incremental) + len(pd.read_csv(files["auc_differences"]))
            - int(bool(primary.get("available"))), alpha),
        "incremental": incremental_verdicts(incremental, alpha, level, primary),
        "final_metrics": final_metrics.to_dict("records"),
    }
    files["summary"] = Path(outputs["summary"])
    files["summary"].write_text(json.dumps(summary, indent=2, default=float))
    if log_run is not None:
        log_run("evaluation", evaluation_record(cfg, metrics, final, files))
    return files


RunSink = Callable[[str, dict], None]
"""`log_run(run name, {"params", "metrics", "dicts", "artifacts", "headline"})`: one MLflow run's content."""


def evaluation_record(cfg: dict, metrics: pd.DataFrame, final: dict, files: dict[str, Path]) -> dict:
    """Every metric row as an MLflow metric `{model}.fold{f}.{cohort}.{op}.{metric}` (`{model}.final...` for
    the mean final model); files as artifacts; `headline`: the final models' AUC on test and external and the
    primary comparison, for the workflow's parent run."""
    flat: dict[str, float] = {}
    for r in metrics.itertuples(index=False):
        where = "final" if int(r.fold) == FINAL_FOLD else f"fold{r.fold}"
        for col in ("cutoff", "sensitivity", "specificity", "ppv", "npv", "accuracy", "auc", "auc_ci_low",
                    "auc_ci_high", "spared_scar_free", "spared_all"):
            v = getattr(r, col)
            if v is not None and np.isfinite(v):
                flat[f"{r.model}.{where}.{r.cohort}.{r.operating_point}.{col}"] = float(v)
    for model, info in final.items():
        flat[f"final.{model}.fold"] = info["fold"]
        flat[f"final.{model}.cutoff"] = info["cutoff"]
        for cohort in HELD_OUT:
            if info.get(f"{cohort}_auc") is not None:
                flat[f"final.{model}.{cohort}_auc"] = info[f"{cohort}_auc"]
    if "summary" in files and Path(files["summary"]).exists():  # the one pre-specified comparison
        pc = json.loads(Path(files["summary"]).read_text()).get("primary_comparison") or {}
        for k in ("diff", "diff_low", "diff_high", "p"):
            v = pc.get(k)
            if pc.get("available") and v is not None and np.isfinite(v):
                flat[f"primary.{pc['model']}-{pc['reference']}.{pc['cohort']}.auc_{k}"] = float(v)
    headline = {k: v for k, v in flat.items() if k.startswith("primary.")
                or (k.startswith("final.") and k.endswith(tuple(f".{c}_auc" for c in HELD_OUT)))}
    return {"params": {f"screening.{k}": v for k, v in cfg.get("screening", {}).items()}
            | {f"evaluation.{k}": v for k, v in cfg.get("evaluation", {}).items()},  # fmt: skip
            "metrics": flat, "dicts": {"final_models.json": final}, "artifacts": list(files.values()),
            "headline": headline}
