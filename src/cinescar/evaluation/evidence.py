"""The evidence a reader weighs: intervals (on discrimination, the proportions at the cut-off, calibration, net
benefit, and the cut-off itself by the whole-chain bootstrap), calibration read as risk, clinical utility,
subgroups, TRIPOD+AI counts, each external cohort on its own, and the headline of the report (issues 12, 24;
docs/evaluation.md).

`evidence_tables` is called once by `evaluate_study` after the metrics and the final models are known. It only
*adds* files; it never changes a cut-off or a probability. Every cut-off it uses is a row of the metrics table
(set on validation data by screening.py), and the recalibration maps are fitted on the development patients, so
test and external patients reach nothing here but the scoring.

Files (the `evaluate` rule's `evidence` outputs, each written to `outputs[name]`):

| file | content |
|---|---|
| `metrics_ci.csv` | every metrics row + `{metric}_low/_high` (Wilson or stratified bootstrap, `interval_method`), and the same rows per named external cohort (`cohort = external:<name>`) |
| `auc_differences.csv` | every pair of final models per cohort: AUC difference, bootstrap percentile interval (`diff_low/high`), DeLong Wald interval (`delong_low/high`), DeLong's p — all descriptive |
| `calibration.csv` | final models per cohort: Brier (bootstrap interval), calibration intercept and slope (Wald intervals) |
| `calibration.csv` … | also `n_clipped` (probabilities the logit clipped), `risk` (as scored / recalibrated on development), `curve` (kind of flexible curve) |
| `reliability.csv` | reliability curve points (equal-width bins, n per bin), per `risk` |
| `calibration_curve.csv` | flexible calibration curve (3-knot restricted cubic spline of logit p) with its bootstrap band (risk.py) |
| `recalibration.csv` | per final model the logistic recalibration map (a, b) fitted on the development patients only |
| `decision_curve.csv` | net benefit per threshold with its bootstrap band, "LGE for all", "LGE for none", net LGE scans avoided per 100, per `risk` |
| `utility.csv` | per final model, cohort and operating point: LGE scans avoided and scar-positive patients missed per 100, with intervals |
| `subgroups.csv` | final models per cohort × centre / vendor / sex / age group (< 50, ≥ 50) |
| `sample_size.csv` | per cohort: events, and the expected 95 % half-widths of a sensitivity, specificity and AUC (tripod.py) |
| `missing_values.csv` | per clinical variable and manifest cohort: values missing before imputation |
| `images_vs_score.csv` | among LGE− patients, Spearman correlation of the number of images with the score, per image model and cohort |
| `instability.csv`, `instability_points.csv` | prediction instability of the mean final image models across their fold models (MAPE, calls that differ at the cut-off; the points of the instability plot) |
| `cutoff_uncertainty.csv` | per final model and evaluated cohort: the cut-off, sensitivity and specificity with whole-chain bootstrap intervals (development resample → cut-off → cohort resample; chain.py) |
| `flow.csv` | participant flow: manifest patients per source, per analysis role, and those in no analysis |
| `evidence.json` | cohort sizes and prevalence per role, optimistic numbers, the clinical comparison, bootstrap cost |
"""

from __future__ import annotations

import json
import logging
import time
from itertools import combinations
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from cinescar.config import schema_default
from cinescar.predictions import HELD_OUT
from cinescar.cohort.contract import external_name
from cinescar.errors import CinescarError
from cinescar.evaluation.bootstrap import (INTERVAL_METRICS, auc_difference_interval, group_seed, percentile_interval,
                                           screening_intervals, stratified_resamples)  # fmt: skip
from cinescar.evaluation.chain import chain_table
from cinescar.evaluation.calibration import EPS, calibration_summary, reliability_table
from cinescar.evaluation.decision import decision_curve, thresholds
from cinescar.evaluation.risk import (CURVE_COLUMNS, fit_recalibration, flexible_calibration,
                                      interventions_avoided_per_100, net_benefit_replicates, recalibrate)
from cinescar.evaluation.delong import delong_test
from cinescar.evaluation.metrics import METRIC_COLUMNS, auc_or_nan, screening_metrics, wilson_intervals
from cinescar.evaluation import screening as scr
from cinescar.evaluation.screening import OPTIMISTIC, VALIDATION
from cinescar.evaluation.tripod import (images_vs_score, instability, missing_values, participant_flow,
                                       sample_size_table)
from cinescar.evaluation.subgroups import SUBGROUP_COLUMNS, subgroup_attributes, subgroup_metrics

log = logging.getLogger(__name__)
KEYS = ["model", "fold", "cohort", "operating_point"]
INTERVAL_COLUMNS = [f"{m}_{s}" for m in INTERVAL_METRICS for s in ("low", "high")]
EXTERNAL = "external"
EVALUATED = HELD_OUT  # ("test", "external"): the split vocabulary is cinescar.predictions's
POOLED = getattr(scr, "POOLED", "pooled")
FINAL_FOLD = getattr(scr, "FINAL_FOLD", -1)
"""`fold` of the pooled out-of-fold validation rows (cohort val): each development patient scored by the one fold
model that did not train on it — the evidence behind the pooled cut-off."""


# ------------------------------------------------------------------------------------------ cohorts
def external_names(manifest: pd.DataFrame | None, index: pd.DataFrame | None) -> dict[str, str]:
    """patient_id → external cohort name ('external' for a plain `external` value), from the manifest or index."""
    for source in (manifest, index):
        if source is not None and {"patient_id", "cohort"} <= set(source.columns):
            pairs = source[["patient_id", "cohort"]].drop_duplicates("patient_id")
            names = pairs["cohort"].map(external_name)
            return dict(zip(pairs["patient_id"].astype(str)[names.notna()], names[names.notna()], strict=True))
    return {}


def cohort_labels(names: dict[str, str]) -> list[str]:
    """The named external cohorts reported on their own (`external:<name>`); none when there is only one."""
    distinct = sorted(set(names.values()))
    return [f"{EXTERNAL}:{n}" for n in distinct] if len(distinct) > 1 else []


def _select(p: pd.DataFrame, fold: object, cohort: str, names: dict[str, str]) -> pd.DataFrame:
    """Patients of one fold and cohort label (test, external, val, or external:<name>), sorted by patient."""
    split = EXTERNAL if cohort.startswith(f"{EXTERNAL}:") else cohort
    sel = p[(p["fold"].astype(str) == str(fold)) & (p["split"] == split)]
    if split != cohort:
        name = cohort.split(":", 1)[1]
        sel = sel[sel["patient_id"].astype(str).map(names) == name]
    return sel.sort_values("patient_id")


class Resamples:
    """One stratified resample matrix per set of patients, shared by every model scored on them (paired)."""

    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.seed, self._cache = n_boot, seed, {}
        self.seconds = 0.0

    def get(self, pids: pd.Series, y: np.ndarray) -> np.ndarray:
        key = "|".join(pids.astype(str))
        if key not in self._cache:
            self._cache[key] = stratified_resamples(y, self.n_boot, group_seed(self.seed, key))
        return self._cache[key]


# ------------------------------------------------------------------------------------------ intervals
def proportion_intervals(y: np.ndarray, p: np.ndarray, cutoff: float, counts: dict, res: Resamples, pids: pd.Series,
                         level: float, method: str) -> dict[str, float]:  # fmt: skip
    """Intervals of every INTERVAL_METRICS proportion: Wilson (default) or the stratified bootstrap."""
    if method == "wilson":
        return wilson_intervals(counts, level)
    if res.n_boot > 0:
        return screening_intervals(y, p, cutoff, res.get(pids, y), level)
    return {}


def metrics_with_intervals(patients: dict[str, pd.DataFrame], metrics: pd.DataFrame, names: dict[str, str],
                           res: Resamples, level: float, method: str = "wilson") -> pd.DataFrame:  # fmt: skip
    """Every metrics row with intervals on its proportions, plus its rows per named external cohort."""
    labels = cohort_labels(names)
    rows = []
    for r in metrics.to_dict("records"):
        cohorts = [r["cohort"]] + (labels if r["cohort"] == EXTERNAL else [])
        for cohort in cohorts:
            pc = _select(patients[r["model"]], r["fold"], cohort, names)
            if pc.empty:
                continue
            y, p = pc["lge"].to_numpy(dtype=int), pc["prob"].to_numpy(dtype=float)
            row = dict(r) if cohort == r["cohort"] else {
                **{k: r[k] for k in KEYS}, "cutoff": r["cutoff"], "cohort": cohort,
                **screening_metrics(y, p, float(r["cutoff"]), ci_level=level)}  # fmt: skip
            row["avoided_per_100"] = 100.0 * row["spared_all"]
            row["missed_per_100"] = 100.0 * row["fn"] / row["n_patients"] if row["n_patients"] else np.nan
            counts = {k: int(row[k]) for k in ("tp", "fp", "tn", "fn")}
            row.update(proportion_intervals(y, p, float(r["cutoff"]), counts, res, pc["patient_id"], level, method))
            row["interval_method"] = method
            rows.append(row)
    extra = [c for c in metrics.columns if c not in KEYS + ["cutoff", *METRIC_COLUMNS]]
    cols = [*KEYS, "cutoff", *METRIC_COLUMNS, "avoided_per_100", "missed_per_100", *INTERVAL_COLUMNS,
            "interval_method", *extra]
    return pd.DataFrame(rows).reindex(columns=cols)


def auc_differences(patients: dict[str, pd.DataFrame], final: dict[str, dict], cohorts: list[str],
                    names: dict[str, str], res: Resamples, level: float) -> pd.DataFrame:  # fmt: skip
    """Every pair of final models on each cohort: AUC_a − AUC_b, bootstrap interval, DeLong's z and p."""
    rows, untested = [], {}
    for cohort in cohorts:
        frames = {m: _select(patients[m], final[m]["fold"], cohort, names).set_index("patient_id") for m in final}
        frames = {m: f for m, f in frames.items() if not f.empty}
        for a, b in combinations(frames, 2):
            ids = frames[a].index.intersection(frames[b].index).sort_values()
            y = frames[a].loc[ids, "lge"].to_numpy(dtype=int)
            sa, sb = frames[a].loc[ids, "prob"].to_numpy(float), frames[b].loc[ids, "prob"].to_numpy(float)
            row = {"cohort": cohort, "model_a": a, "fold_a": final[a]["fold"], "model_b": b,
                   "fold_b": final[b]["fold"], "n_patients": len(ids), "n_pos": int(y.sum())}  # fmt: skip
            auc_a, auc_b = auc_or_nan(y, sa), auc_or_nan(y, sb)
            row.update({"auc_a": auc_a, "auc_b": auc_b, "diff": auc_a - auc_b, "z": np.nan, "p": np.nan,
                        "delong_low": np.nan, "delong_high": np.nan})  # fmt: skip
            try:
                d = delong_test(y, sa, sb)
                zq = stats.norm.ppf(0.5 + level / 2.0)
                row.update({"z": d.z, "p": d.p, "delong_low": d.diff - zq * d.se, "delong_high": d.diff + zq * d.se})
            except CinescarError as exc:  # e.g. one LGE+ patient: the AUCs exist, DeLong's variance does not
                untested.setdefault(cohort, str(exc))
            row["diff_low"] = row["diff_high"] = np.nan
            if res.n_boot > 0 and 0 < y.sum() < y.size:
                row["diff_low"], row["diff_high"] = auc_difference_interval(
                    y, sa, sb, res.get(pd.Series(ids), y), level)
            rows.append(row)
    for cohort, why in untested.items():  # once per cohort, not once per pair of models
        log.warning("AUC differences on %s: no DeLong test (%s)", cohort, why)
    return pd.DataFrame(rows, columns=["cohort", "model_a", "fold_a", "model_b", "fold_b", "n_patients", "n_pos",
                                       "auc_a", "auc_b", "diff", "diff_low", "diff_high", "delong_low", "delong_high",
                                       "z", "p"])


# ------------------------------------------------------------------------------------------ calibration
def _wald_calibration(y: np.ndarray, p: np.ndarray, slope: float, intercept: float, level: float,
                      slope_intercept: float) -> dict:  # fmt: skip
    """Wald intervals of the calibration slope (two-parameter fit) and intercept (offset fit), from the
    observed information of the logistic likelihood (written by hand: scikit-learn gives no standard errors)."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    x = np.log(np.clip(p, EPS, 1 - EPS) / (1 - np.clip(p, EPS, 1 - EPS)))
    out = {"cal_slope_low": np.nan, "cal_slope_high": np.nan, "cal_intercept_low": np.nan, "cal_intercept_high": np.nan}
    if np.isfinite(intercept):
        w = expit(intercept + x)
        se = 1.0 / np.sqrt(np.sum(w * (1 - w)))
        out["cal_intercept_low"], out["cal_intercept_high"] = intercept - z * se, intercept + z * se
    if np.isfinite(slope):
        w = expit(slope_intercept + slope * x)
        X = np.column_stack([np.ones_like(x), x])
        cov = np.linalg.pinv(X.T @ (X * (w * (1 - w))[:, None]))
        se = float(np.sqrt(max(cov[1, 1], 0.0)))
        out["cal_slope_low"], out["cal_slope_high"] = slope - z * se, slope + z * se
    return out


AS_SCORED, RECALIBRATED = "as scored", "recalibrated on development"
"""`risk` of calibration and decision-curve rows: the model's own probabilities, or the logistic map fitted on
the pooled out-of-fold development patients (risk.fit_recalibration) applied to test and external patients."""


def recalibration_maps(patients: dict[str, pd.DataFrame], final: dict[str, dict], method: str) -> dict[str, dict]:
    """Per final model, the recalibration map fitted on the pooled out-of-fold validation (development)
    patients of its fold models — never on test or external patients; empty when `method` is none."""
    if method == "none":
        return {}
    out = {}
    for model in final:
        p = patients[model]
        val = p[(p["split"] == "val") & (p["fold"] >= 0)]
        if val.empty or val["patient_id"].duplicated().any():
            continue
        out[model] = fit_recalibration(val["lge"].to_numpy(int), val["prob"].to_numpy(float))
    return out


def risk_versions(p: np.ndarray, model: str, cohort: str, maps: dict[str, dict]) -> list[tuple[str, np.ndarray]]:
    """The probabilities as scored and, on test/external cohorts with a fitted map, recalibrated."""
    out = [(AS_SCORED, p)]
    if cohort != "val" and model in maps and np.isfinite(maps[model]["a"]):
        out.append((RECALIBRATED, recalibrate(p, maps[model])))
    return out


def calibration_tables(patients: dict[str, pd.DataFrame], final: dict[str, dict], cohorts: list[str],
                       names: dict[str, str], res: Resamples, level: float, n_bins: int,
                       maps: dict[str, dict] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Calibration summary (with intervals), reliability points and flexible calibration curves (with bootstrap
    bands) of the final models on each cohort, as scored and (test/external) recalibrated on development."""
    summary, curves, flexible = [], [], []
    for model, info in final.items():
        for cohort in cohorts:
            pc = _select(patients[model], info["fold"], cohort, names)
            if pc.empty:
                continue
            y, p0 = pc["lge"].to_numpy(dtype=int), pc["prob"].to_numpy(dtype=float)
            idx = res.get(pc["patient_id"], y) if res.n_boot > 0 and 0 < y.sum() < y.size else None
            for risk, p in risk_versions(p0, model, cohort, maps or {}):
                key = {"model": model, "fold": info["fold"], "cohort": cohort, "risk": risk}
                row = {**key, **calibration_summary(y, p)}
                row.update(_wald_calibration(y, p, row["cal_slope"], row["cal_intercept"], level,
                                             row.pop("slope_intercept")))  # fmt: skip
                row["brier_low"] = row["brier_high"] = np.nan
                if idx is not None:
                    lo, hi = percentile_interval(((p[idx] - y[idx]) ** 2).mean(axis=1), level)
                    row["brier_low"], row["brier_high"] = float(lo), float(hi)
                curve, kind = flexible_calibration(y, p, idx, level)
                row["curve"] = kind
                summary.append(row)
                curves.append(reliability_table(y, p, n_bins).assign(**key))
                if len(curve):
                    flexible.append(curve.assign(**key))
    cols = ["model", "fold", "cohort", "risk", "n_patients", "n_pos", "n_clipped", "brier", "brier_low", "brier_high",
            "cal_intercept", "cal_intercept_low", "cal_intercept_high", "cal_slope", "cal_slope_low", "cal_slope_high",
            "slope_note", "curve"]  # fmt: skip
    rel_cols = ["model", "fold", "cohort", "risk", "bin", "bin_low", "bin_high", "n", "mean_prob", "observed"]
    rel = pd.concat(curves, ignore_index=True)[rel_cols] if curves else pd.DataFrame(columns=rel_cols)
    flex_cols = ["model", "fold", "cohort", "risk", *CURVE_COLUMNS]
    flex = pd.concat(flexible, ignore_index=True)[flex_cols] if flexible else pd.DataFrame(columns=flex_cols)
    return pd.DataFrame(summary, columns=cols), rel, flex


def decision_with_bands(y: np.ndarray, p: np.ndarray, grid: np.ndarray, idx: np.ndarray | None,
                        level: float) -> pd.DataFrame:  # fmt: skip
    """decision.decision_curve plus the net benefit's bootstrap band and net interventions avoided per 100."""
    dc = decision_curve(y, p, grid)
    dc["net_benefit_low"] = dc["net_benefit_high"] = np.nan
    if idx is not None:
        lo, hi = percentile_interval(net_benefit_replicates(y, p, grid, idx), level, axis=0)
        dc["net_benefit_low"], dc["net_benefit_high"] = lo, hi
    dc["interventions_avoided_per_100"] = interventions_avoided_per_100(dc["net_benefit"], dc["treat_all"], grid)
    return dc


# ------------------------------------------------------------------------------------------ the whole lot
def _default_op(metrics: pd.DataFrame) -> str:
    ops = list(dict.fromkeys(metrics["operating_point"])) if len(metrics) else [VALIDATION]
    return next((o for o in (POOLED, VALIDATION) if o in ops), ops[0])


def with_pooled_validation(patients: dict[str, pd.DataFrame], metrics: pd.DataFrame,
                           level: float) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:  # fmt: skip
    """Add the pooled out-of-fold validation patients (fold FINAL_FOLD, split val) and their metrics rows at the
    pooled cut-off, so the cut-off's own validation sensitivity gets its interval beside test and external."""
    pats, extra = dict(patients), []
    for model, p in patients.items():
        pooled = metrics[(metrics["model"] == model) & (metrics["operating_point"] == POOLED)]
        have = (p["split"] == "val") & (p["fold"].astype(str) == str(FINAL_FOLD))
        val = p[p["split"] == "val"]
        if pooled.empty or have.any() or val.empty or val["patient_id"].duplicated().any():
            continue
        cut = float(pooled["cutoff"].iloc[0])
        pats[model] = pd.concat([p, val.assign(fold=FINAL_FOLD)], ignore_index=True)
        m = screening_metrics(val["lge"].to_numpy(int), val["prob"].to_numpy(float), cut, ci_level=level)
        extra.append({"model": model, "fold": FINAL_FOLD, "cohort": "val", "operating_point": POOLED, "cutoff": cut, **m})
    return pats, pd.concat([metrics, pd.DataFrame(extra)], ignore_index=True) if extra else metrics


def cohort_sizes(patients: dict[str, pd.DataFrame], names: dict[str, str]) -> list[dict]:
    """Patients, LGE+ and prevalence per role: development (validated once each), internal test, each external."""
    p = next(iter(patients.values()))
    first = p.drop_duplicates(["split", "patient_id"])
    out = []
    role_names = {"val": "development (out-of-fold validation)", "test": "internal test"}
    for split, label in role_names.items():
        g = first[first["split"] == split]
        if len(g):
            out.append({"role": label, "cohort": split, "n_patients": int(len(g)), "n_pos": int(g["lge"].sum())})
    ext = first[first["split"] == EXTERNAL]
    for name in sorted(set(names.values())) or ([EXTERNAL] if len(ext) else []):
        g = ext[ext["patient_id"].astype(str).map(names).fillna(EXTERNAL) == name]
        if len(g):
            label = "external" if name == EXTERNAL else f"external: {name}"
            cohort = EXTERNAL if len(set(names.values())) <= 1 else f"{EXTERNAL}:{name}"
            out.append({"role": label, "cohort": cohort, "n_patients": int(len(g)), "n_pos": int(g["lge"].sum())})
    for r in out:
        r["prevalence"] = r["n_pos"] / r["n_patients"]
    return out


def optimistic_numbers(metrics: pd.DataFrame, final: dict[str, dict]) -> list[str]:
    """Which reported numbers are optimistic, in words, for the headline box."""
    notes = ["validation rows (cohort val): the cut-off was set on these very patients"]
    if (metrics["operating_point"] == OPTIMISTIC).any():
        notes.append("rows labelled optimistic: cut-off chosen on the evaluated cohort itself (paper's variant)")
    on_test = [m for m, v in final.items() if v.get("optimistic") or "test" in str(v.get("rule", "")).lower()]
    if on_test:
        notes.append("final-model numbers on the internal test cohort of " + ", ".join(on_test)
                     + ": the final model was chosen on that cohort")
    return notes


def clinical_comparison(diffs: pd.DataFrame, models: list[str], primary: dict | None = None) -> list[dict]:
    """Combined (image + clinical) model vs the clinical one, per image model and cohort.

    The interval is DeLong's Wald interval (ΔAUC ± z·SE) — the method of the primary comparison and of the
    report's sentences, so the table and the text cannot give two answers. Only the row of the pre-specified
    primary comparison (cinescar.evaluation.primary) carries a verdict; every other row is `descriptive`.
    Model roles come from `cinescar.models`; without a clinical model the list is empty.
    """
    from cinescar.models import CLINICAL as clinical, COMBINED as combined

    if clinical not in models:
        return []
    is_primary = bool(primary and primary.get("available"))
    out = []
    for image, comb in combined.items():
        for r in diffs.to_dict("records"):
            if {r["model_a"], r["model_b"]} != {comb, clinical}:
                continue
            sign = 1.0 if r["model_a"] == comb else -1.0
            lo, hi = sorted((sign * r["delong_low"], sign * r["delong_high"]))
            row = {"image_model": image, "combined_model": comb, "clinical_model": clinical, "cohort": r["cohort"],
                   "n_patients": r["n_patients"], "diff": sign * r["diff"], "diff_low": lo, "diff_high": hi,
                   "p": r["p"], "interval_method": "DeLong Wald", "role": "descriptive", "verdict": "descriptive"}  # fmt: skip
            if is_primary and primary["model"] == comb and primary["cohort"] == r["cohort"]:
                row.update(role="primary", verdict=primary["verdict"], diff_low=primary["diff_low"],
                           diff_high=primary["diff_high"], p=primary["p"], interval_method=primary["method_words"])
            out.append(row)
    return sorted(out, key=lambda r: r["role"] != "primary")


def evidence_tables(patients: dict[str, pd.DataFrame], metrics: pd.DataFrame, final: dict[str, dict],
                    manifest: pd.DataFrame | None, index: pd.DataFrame | None, cfg: dict,
                    outputs: Mapping[str, str | Path], primary: dict | None = None, log_run=None
                    ) -> dict[str, Path]:  # fmt: skip
    """Write the evidence files listed in the module docstring, each to `outputs[name]` (the rule's names);
    returns {name: path}. `primary`: the
    pre-specified comparison (cinescar.evaluation.primary), marked in the clinical comparison."""
    ev = cfg.get("evaluation", {})
    level = float(ev.get("ci_level", 0.95))
    n_boot = int(ev.get("n_bootstrap", 1000))
    dc = ev.get("decision_curve", {})
    grid = thresholds(float(dc.get("start", 0.01)), float(dc.get("stop", 0.6)), float(dc.get("step", 0.01)))
    for path in outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    names = external_names(manifest, index)
    cohorts = [*EVALUATED, *cohort_labels(names)]
    res = Resamples(n_boot, int(cfg.get("seed", schema_default("seed"))))
    op = _default_op(metrics)
    patients, metrics = with_pooled_validation(patients, metrics, level)

    t0 = time.process_time()
    method = str(ev.get("proportion_interval", "wilson"))
    mci = metrics_with_intervals(patients, metrics, names, res, level, method)
    t_metrics = time.process_time() - t0
    dev_cohorts = ["val", *cohorts]  # val: pooled out-of-fold (mean rule) or the final fold's validation patients
    diffs = auc_differences(patients, final, dev_cohorts, names, res, level)
    maps = recalibration_maps(patients, final, str(ev.get("recalibration", "logistic")))
    calib, rel, flex = calibration_tables(patients, final, dev_cohorts, names, res, level,
                                          int(ev.get("reliability_bins", 5)), maps)  # fmt: skip

    curves, subgroups = [], []
    attrs = subgroup_attributes(manifest)
    for model, info in final.items():
        for cohort in dev_cohorts:
            pc = _select(patients[model], info["fold"], cohort, names)
            if pc.empty:
                continue
            y, p = pc["lge"].to_numpy(dtype=int), pc["prob"].to_numpy(dtype=float)
            idx = res.get(pc["patient_id"], y) if res.n_boot > 0 and 0 < y.sum() < y.size else None
            for risk, pr in risk_versions(p, model, cohort, maps):
                curves.append(decision_with_bands(y, pr, grid, idx, level).assign(model=model, fold=info["fold"],
                                                                                   cohort=cohort, risk=risk))
            row = mci[(mci["model"] == model) & (mci["fold"].astype(str) == str(info["fold"]))
                      & (mci["cohort"] == cohort) & (mci["operating_point"] == op)]  # fmt: skip
            if attrs is not None and len(row) and y.min() != y.max():
                sg = subgroup_metrics(pc[["patient_id", "lge", "prob"]].assign(patient_id=lambda d: d["patient_id"].astype(str)),
                                      attrs, float(row["cutoff"].iloc[0]), n_boot, level,
                                      group_seed(int(cfg.get("seed", schema_default("seed"))), model, cohort), method)  # fmt: skip
                subgroups.append(sg.assign(model=model, fold=info["fold"], cohort=cohort))
    t_total = time.process_time() - t0

    is_final = pd.Series(False, index=mci.index)
    for model, info in final.items():
        is_final |= (mci["model"] == model) & (mci["fold"].astype(str) == str(info["fold"]))
    utility = mci[is_final & mci["cohort"].isin(dev_cohorts)][
        [*KEYS, "cutoff", "n_patients", "n_pos", "avoided_per_100", "avoided_per_100_low", "avoided_per_100_high",
         "missed_per_100", "missed_per_100_low", "missed_per_100_high", "sensitivity", "sensitivity_low",
         "sensitivity_high", "specificity", "specificity_low", "specificity_high"]]
    dcols = ["model", "fold", "cohort", "risk", "threshold", "net_benefit", "net_benefit_low", "net_benefit_high",
             "treat_all", "treat_none", "scanned_per_100", "interventions_avoided_per_100"]  # fmt: skip
    frames = {
        "metrics_ci": mci, "auc_differences": diffs, "calibration": calib, "reliability": rel, "utility": utility,
        "calibration_curve": flex,
        "sample_size": sample_size_table(cohort_sizes(patients, names),
                                         float(cfg.get("screening", {}).get("target_sensitivity", 0.90)), level),
        "missing_values": missing_values(manifest, list(cfg.get("clinical", {}).get("variables", schema_default("clinical", "variables")))),
        "images_vs_score": images_vs_score(patients, final),
        "flow": participant_flow(manifest, cohort_sizes(patients, names)),
        "cutoff_uncertainty": chain_table(patients, final, cohorts, lambda p, f, c: _select(p, f, c, names), cfg,
                                          level),
        **dict(zip(("instability_points", "instability"), instability(patients, final), strict=True)),
        "recalibration": pd.DataFrame([{"model": m, **f, "fitted_on": "pooled out-of-fold validation (development)"}
                                       for m, f in maps.items()],
                                      columns=["model", "a", "b", "note", "n_patients", "n_pos", "fitted_on"]),
        "decision_curve": pd.concat(curves, ignore_index=True)[dcols] if curves else pd.DataFrame(columns=dcols),
        "subgroups": pd.concat(subgroups, ignore_index=True)[["model", "fold", "cohort", *SUBGROUP_COLUMNS]]
        if subgroups else pd.DataFrame(columns=["model", "fold", "cohort", *SUBGROUP_COLUMNS]),
    }  # fmt: skip
    files: dict[str, Path] = {}
    for name, df in frames.items():
        files[name] = Path(outputs[name])
        df.to_csv(files[name], index=False)
    headline = {
        "cohorts": cohort_sizes(patients, names),
        "external_cohorts": sorted(set(names.values())),
        "default_operating_point": op,
        "optimistic": optimistic_numbers(metrics, final),
        "clinical_comparison": clinical_comparison(diffs, list(final), primary),
        "proportion_interval": method,
        "bootstrap": {"n_bootstrap": n_boot, "level": level, "cpu_seconds_metric_intervals": round(t_metrics, 3),
                      "cpu_seconds_evidence_total": round(t_total, 3), "metrics_rows": int(len(mci)),
                      "patient_sets": len(res._cache)},  # fmt: skip
    }
    files["evidence"] = Path(outputs["evidence"])
    files["evidence"].write_text(json.dumps(headline, indent=2, default=float))
    log.info("evidence: %d metric rows with %d bootstrap replicates in %.2f s (all evidence %.2f s)", len(mci),
             n_boot, t_metrics, t_total)  # fmt: skip
    if log_run is not None:  # the job layer's MLflow sink (cinescar.evaluation.run)
        log_run("evaluation-evidence", {"metrics": evidence_metrics(calib, utility, diffs)})
    return files


def _mlflow_name(*parts: object) -> str:
    return ".".join(str(p).replace(":", "_").replace(" ", "_") for p in parts)


def evidence_metrics(calib: pd.DataFrame, utility: pd.DataFrame, diffs: pd.DataFrame) -> dict[str, float]:
    """Calibration, utility per 100 and AUC differences of the final models as MLflow metrics (stage=evaluation)."""
    flat: dict[str, float] = {}
    for r in calib.to_dict("records"):
        recal = () if r.get("risk", AS_SCORED) == AS_SCORED else ("recalibrated",)
        for k in ("brier", "cal_intercept", "cal_slope"):
            flat[_mlflow_name("final", r["model"], r["cohort"], *recal, k)] = r[k]
    for r in utility.to_dict("records"):
        for k in ("avoided_per_100", "avoided_per_100_low", "avoided_per_100_high", "missed_per_100",
                  "missed_per_100_low", "missed_per_100_high"):  # fmt: skip
            flat[_mlflow_name("final", r["model"], r["cohort"], r["operating_point"], k)] = r[k]
    for r in diffs.to_dict("records"):
        for k in ("diff", "diff_low", "diff_high", "p"):
            flat[_mlflow_name("final", f"{r['model_a']}-{r['model_b']}", r["cohort"], f"auc_{k}")] = r[k]
    return {k: float(v) for k, v in flat.items() if v is not None and np.isfinite(v)}
