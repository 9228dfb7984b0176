"""Subgroups: does the model work in every centre, on every vendor's scanner, in women and men, young and old?

Why: a multi-centre model can reach a good pooled AUC while failing in one centre (or learning the centre);
the reader needs the per-centre and per-vendor numbers, each with its n. A subgroup's metrics are computed
only when it holds both LGE classes (an AUC or a sensitivity needs both); otherwise its row gives n and
n_pos and says "one class only". AUC with DeLong's interval (needs two patients of each class), sensitivity
and specificity at the model's cut-off with Wilson's interval (or the stratified bootstrap of bootstrap.py,
`evaluation.proportion_interval`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinescar.evaluation.bootstrap import group_seed, percentile_interval, screening_replicates, stratified_resamples
from cinescar.evaluation.metrics import screening_metrics, wilson_intervals

SUBGROUP_VARIABLES = ("center", "vendor", "sex", "age_group")
AGE_SPLIT = 50
"""Age groups < 50 and ≥ 50 years: fixed here (TRIPOD+AI 23b asks for age and sex subgroups), not chosen on the
data; the median age of HCM cohorts is near 50."""


def subgroup_attributes(manifest: pd.DataFrame | None) -> pd.DataFrame | None:
    """patient_id and the subgroup columns the manifest has (age → `age_group`); None without any."""
    if manifest is None or "patient_id" not in manifest.columns:
        return None
    attrs = manifest[["patient_id"]].assign(patient_id=manifest["patient_id"].astype(str))
    for var in ("center", "vendor", "sex"):
        if var in manifest.columns:
            attrs[var] = manifest[var].to_numpy()
    if "age" in manifest.columns:
        age = pd.to_numeric(manifest["age"], errors="coerce").to_numpy()
        attrs["age_group"] = np.where(np.isnan(age), None, np.where(age < AGE_SPLIT, f"< {AGE_SPLIT}", f"≥ {AGE_SPLIT}"))
    return attrs if attrs.shape[1] > 1 else None
SUBGROUP_METRICS = ("auc", "sensitivity", "specificity")
SUBGROUP_COLUMNS = ["variable", "level", "n_patients", "n_pos", "n_neg", "note", "cutoff", "auc", "auc_ci_low",
                    "auc_ci_high", "sensitivity", "sensitivity_low", "sensitivity_high", "specificity",
                    "specificity_low", "specificity_high"]  # fmt: skip


def subgroup_metrics(patients: pd.DataFrame, attributes: pd.DataFrame, cutoff: float, n_boot: int,
                     level: float = 0.95, seed: int = 0, method: str = "wilson") -> pd.DataFrame:  # fmt: skip
    """Per level of each SUBGROUP_VARIABLES column: n, n_pos and (both classes present) the metrics.

    `patients` has patient_id, lge, prob (one model, one cohort); `attributes` has patient_id and the subgroup
    columns (the manifest). A variable missing from `attributes` is skipped.
    """
    df = patients.merge(attributes, on="patient_id", how="left", validate="one_to_one")
    rows = []
    for var in SUBGROUP_VARIABLES:
        if var not in df.columns:
            continue
        for level_value, g in df.groupby(df[var].fillna("(missing)").astype(str), sort=True):
            y, p = g["lge"].to_numpy(dtype=int), g["prob"].to_numpy(dtype=float)
            row = {"variable": var, "level": level_value, "n_patients": int(y.size), "n_pos": int(y.sum()),
                   "n_neg": int(y.size - y.sum()), "cutoff": float(cutoff), "note": ""}  # fmt: skip
            if y.min() == y.max():
                row["note"] = "one class only"
                rows.append(row)
                continue
            m = screening_metrics(y, p, cutoff, ci_level=level)
            row.update({k: m[k] for k in ("auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity")})
            if method == "wilson":
                w = wilson_intervals(m, level)
                row.update({f"{k}_{e}": w[f"{k}_{e}"] for k in ("sensitivity", "specificity") for e in ("low", "high")})
            elif n_boot > 0:
                idx = stratified_resamples(y, n_boot, group_seed(seed, var, level_value))
                reps = screening_replicates(y, p, cutoff, idx)
                for k in ("sensitivity", "specificity"):
                    lo, hi = percentile_interval(reps[k], level)
                    row[f"{k}_low"], row[f"{k}_high"] = float(lo), float(hi)
            if not np.isfinite(row["auc_ci_low"]):
                row["note"] = "AUC interval needs ≥ 2 patients of each class"
            rows.append(row)
    return pd.DataFrame(rows, columns=SUBGROUP_COLUMNS)
