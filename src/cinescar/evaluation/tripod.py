"""TRIPOD+AI items that are counts and checks rather than performance: the sample size and the precision it
buys, missing clinical values before imputation, and whether the score tracks the number of images.

Why each one:
- **Sample size** (TRIPOD+AI 9): a reader must know how precise a number *can* be before reading it. Per cohort
  it states the events and the expected 95 % half-width of a sensitivity of `target` (Wilson, m LGE+), of a
  specificity of 0.5 (the widest, n LGE−) and of an AUC of 0.75 (Hanley & McNeil, Radiology 1982) — fixed
  reference values, not the observed ones, so the statement can be read before the results.
- **Missing values** (TRIPOD+AI 9a/13b): per clinical variable (`clinical.variables`) and cohort, the patients
  without a value in the manifest, i.e. before the clinical model's imputation.
- **Images vs score** (a shortcut check): a patient's probability is the maximum over its images, and the
  maximum of more draws is larger; the number of slices tracks LV size. Among LGE− patients a positive
  Spearman correlation between the number of images and the score means the score partly counts slices.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from cinescar.models import IMAGE_MODELS
from cinescar.predictions import HELD_OUT

SAMPLE_SIZE_COLUMNS = ["role", "cohort", "n_patients", "n_pos", "n_neg", "sensitivity_halfwidth",
                       "specificity_halfwidth", "auc_halfwidth"]  # fmt: skip
IMAGES_COLUMNS = ["model", "fold", "cohort", "n_neg", "spearman_rho", "p", "median_images"]


def wilson_halfwidth(p: float, n: int, level: float = 0.95) -> float:
    """Half the width of the Wilson score interval of a proportion p observed on n patients."""
    if n <= 0:
        return float("nan")
    z = stats.norm.ppf(0.5 + level / 2.0)
    return float(z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n))


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC on n_pos and n_neg patients (Hanley & McNeil 1982, exponential approximation)."""
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(math.sqrt(var))


def sample_size_table(cohorts: list[dict], target: float, level: float = 0.95) -> pd.DataFrame:
    """Per cohort (evidence.cohort_sizes rows): events and the precision they buy at fixed reference values."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    rows = []
    for c in cohorts:
        n, m = int(c["n_patients"]), int(c["n_pos"])
        rows.append({"role": c["role"], "cohort": c["cohort"], "n_patients": n, "n_pos": m, "n_neg": n - m,
                     "sensitivity_halfwidth": wilson_halfwidth(target, m, level),
                     "specificity_halfwidth": wilson_halfwidth(0.5, n - m, level),
                     "auc_halfwidth": z * hanley_mcneil_se(0.75, m, n - m)})  # fmt: skip
    return pd.DataFrame(rows, columns=SAMPLE_SIZE_COLUMNS)


def sample_size_sentence(table: pd.DataFrame, target: float) -> str:
    """One sentence per cohort: events, and how precise a sensitivity, specificity and AUC can be."""
    parts = [f"{r.role}: {r.n_patients} patients, {r.n_pos} LGE+ — a sensitivity of {target:.2f} is known to "
             f"±{r.sensitivity_halfwidth:.2f}, a specificity of 0.50 to ±{r.specificity_halfwidth:.2f}, an AUC of "
             f"0.75 to ±{r.auc_halfwidth:.2f}" for r in table.itertuples()]  # fmt: skip
    return ("Sample size (expected 95 % half-widths at fixed reference values): " + "; ".join(parts) + "."
            if parts else "")


def missing_values(manifest: pd.DataFrame | None, variables: list[str]) -> pd.DataFrame:
    """Per clinical variable and cohort of the manifest: patients, missing values, share missing (before
    imputation); a variable absent from the manifest is listed as missing for everyone."""
    cols = ["variable", "cohort", "n_patients", "n_missing", "share_missing", "in_manifest"]
    if manifest is None or not variables:
        return pd.DataFrame(columns=cols)
    group = manifest["cohort"].astype(str) if "cohort" in manifest.columns else pd.Series("all", index=manifest.index)
    rows = []
    for var in variables:
        present = var in manifest.columns
        for cohort, g in manifest.groupby(group, sort=True):
            n = len(g)
            miss = int(g[var].isna().sum()) if present else n
            rows.append({"variable": var, "cohort": cohort, "n_patients": n, "n_missing": miss,
                         "share_missing": miss / n if n else float("nan"), "in_manifest": present})
    return pd.DataFrame(rows, columns=cols)


def images_vs_score(patients: dict[str, pd.DataFrame], final: dict[str, dict]) -> pd.DataFrame:
    """Spearman correlation of the number of images with the score among LGE− patients, per image model and
    cohort (development = pooled out of fold; test and external = the final model)."""
    rows = []
    for model in (m for m in IMAGE_MODELS if m in patients):
        p = patients[model]
        if "n_images" not in p.columns:
            continue
        fold = int(final[model]["fold"])
        sets = {"val": p[(p["split"] == "val") & (p["fold"] >= 0)]}
        sets.update({c: p[(p["split"] == c) & (p["fold"] == fold)] for c in HELD_OUT})
        for cohort, g in sets.items():
            neg = g[g["lge"] == 0]
            n_img = pd.to_numeric(neg["n_images"], errors="coerce").to_numpy(dtype=float)
            prob = neg["prob"].to_numpy(dtype=float)
            ok = np.isfinite(n_img) & np.isfinite(prob)
            rho = pval = float("nan")
            if ok.sum() >= 3 and np.ptp(n_img[ok]) > 0 and np.ptp(prob[ok]) > 0:
                res = stats.spearmanr(n_img[ok], prob[ok])
                rho, pval = float(res.statistic), float(res.pvalue)
            rows.append({"model": model, "fold": -1 if cohort == "val" else fold, "cohort": cohort,
                         "n_neg": int(ok.sum()), "spearman_rho": rho, "p": pval,
                         "median_images": float(np.median(n_img[ok])) if ok.any() else float("nan")})  # fmt: skip
    return pd.DataFrame(rows, columns=IMAGES_COLUMNS)


INSTABILITY_COLUMNS = ["model", "cohort", "n_patients", "n_folds", "mape", "max_abs_difference", "cutoff",
                       "share_calls_differ", "share_patients_any_call_differs"]  # fmt: skip


def instability(patients: dict[str, pd.DataFrame], final: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-patient prediction instability across the fold models (Riley & Collins, BMJ 2023), for the image
    models' mean final model on test and external: (points, summary).

    Points: each patient's final (mean) probability beside each fold model's — the data of the instability
    plot. Summary: the mean absolute prediction error |p_fold − p_final| (MAPE), its maximum, and at the final
    model's cut-off the share of fold-model calls that differ from the final model's and the share of patients
    whom at least one fold model would call differently. Only the mean rule has fold models to compare with.
    """
    points, rows = [], []
    for model in (m for m in IMAGE_MODELS if m in patients):
        info = final[model]
        if int(info["fold"]) >= 0:
            continue
        p = patients[model]
        cut = float(info["cutoff"])
        for cohort in HELD_OUT:
            fin = p[(p["fold"] == int(info["fold"])) & (p["split"] == cohort)][["patient_id", "lge", "prob"]]
            folds = p[(p["fold"] >= 0) & (p["split"] == cohort)][["patient_id", "fold", "prob"]]
            if fin.empty or folds.empty:
                continue
            m = folds.merge(fin.rename(columns={"prob": "final_prob"}), on="patient_id", validate="many_to_one")
            points.append(m.assign(model=model, cohort=cohort))
            diff = (m["prob"] - m["final_prob"]).abs()
            differs = (m["prob"] >= cut) != (m["final_prob"] >= cut)
            rows.append({"model": model, "cohort": cohort, "n_patients": int(fin["patient_id"].nunique()),
                         "n_folds": int(m["fold"].nunique()), "mape": float(diff.mean()),
                         "max_abs_difference": float(diff.max()), "cutoff": cut,
                         "share_calls_differ": float(differs.mean()),
                         "share_patients_any_call_differs": float(differs.groupby(m["patient_id"]).any().mean())})  # fmt: skip
    cols = ["model", "cohort", "patient_id", "lge", "fold", "prob", "final_prob"]
    pts = pd.concat(points, ignore_index=True)[cols] if points else pd.DataFrame(columns=cols)
    return pts, pd.DataFrame(rows, columns=INSTABILITY_COLUMNS)


FLOW_COLUMNS = ["stage", "source", "n_patients", "n_pos"]


def participant_flow(manifest: pd.DataFrame | None, cohorts: list[dict]) -> pd.DataFrame:
    """TRIPOD+AI 20a: patients in the manifest per source (internal / each external), then per analysis role
    (evidence.cohort_sizes), and those of the manifest no analysis holds (e.g. no usable image)."""
    rows = []
    evaluated = sum(int(c["n_patients"]) for c in cohorts)
    if manifest is not None and {"patient_id", "lge"} <= set(manifest.columns):
        src = manifest["cohort"].astype(str) if "cohort" in manifest.columns else pd.Series("all", index=manifest.index)
        for name, g in manifest.groupby(src, sort=True):
            rows.append({"stage": "manifest", "source": name, "n_patients": int(g["patient_id"].nunique()),
                         "n_pos": int(pd.to_numeric(g["lge"], errors="coerce").fillna(0).astype(int).sum())})
        total = int(manifest["patient_id"].nunique())
        rows.append({"stage": "not in any analysis", "source": "all", "n_patients": total - evaluated,
                     "n_pos": sum(r["n_pos"] for r in rows) - sum(int(c["n_pos"]) for c in cohorts)})
    for c in cohorts:
        rows.append({"stage": "analysed", "source": c["role"], "n_patients": int(c["n_patients"]),
                     "n_pos": int(c["n_pos"])})
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)
