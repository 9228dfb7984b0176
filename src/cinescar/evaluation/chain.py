"""The cut-off's own uncertainty: bootstrap the whole chain, development resample → cut-off → evaluated cohort.

Why: the intervals of metrics_ci.csv treat the cut-off as fixed, but it is itself an estimate (an empirical
quantile of the development LGE+ probabilities). A new study with other development patients would set another
cut-off, and reach another sensitivity on the same test patients. Each replicate here resamples the pooled
out-of-fold development patients (stratified), sets the cut-off on them by the configured rule
(screening.choose_cutoff: point or tolerance), resamples the evaluated cohort (stratified, independently) and
scores it at that cut-off. The percentile intervals therefore hold both sources of variation. Development
patients only ever set the cut-off; test and external patients are only scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinescar.config import schema_default
from cinescar.evaluation.bootstrap import group_seed, percentile_interval, stratified_resamples
from cinescar.evaluation.screening import choose_cutoff

CHAIN_COLUMNS = ["model", "fold", "cohort", "n_boot", "cutoff", "cutoff_low", "cutoff_high", "sensitivity",
                 "sensitivity_low", "sensitivity_high", "specificity", "specificity_low", "specificity_high"]  # fmt: skip


def chain_bootstrap(y_dev: np.ndarray, p_dev: np.ndarray, y_eval: np.ndarray, p_eval: np.ndarray, target: float,
                    confidence: float | None, n_boot: int, seed: int, level: float = 0.95) -> dict[str, float]:  # fmt: skip
    """Cut-off, sensitivity and specificity on the evaluated cohort with whole-chain percentile intervals."""
    y_dev, p_dev = np.asarray(y_dev).astype(int), np.asarray(p_dev, dtype=float)
    y_eval, p_eval = np.asarray(y_eval).astype(int), np.asarray(p_eval, dtype=float)
    cut = choose_cutoff(y_dev, p_dev, target, confidence)
    pos, neg = y_eval == 1, y_eval == 0
    out = {"n_boot": int(n_boot), "cutoff": cut,
           "sensitivity": float(np.mean(p_eval[pos] >= cut)) if pos.any() else np.nan,
           "specificity": float(np.mean(p_eval[neg] < cut)) if neg.any() else np.nan}  # fmt: skip
    dev_idx = stratified_resamples(y_dev, n_boot, seed)
    ev_idx = stratified_resamples(y_eval, n_boot, seed + 1)
    cuts = np.array([choose_cutoff(y_dev[i], p_dev[i], target, confidence) for i in dev_idx])
    ye, pe = y_eval[ev_idx], p_eval[ev_idx]
    called = pe >= cuts[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (called & (ye == 1)).sum(axis=1) / (ye == 1).sum(axis=1)
        spec = (~called & (ye == 0)).sum(axis=1) / (ye == 0).sum(axis=1)
    for name, rep in (("cutoff", cuts), ("sensitivity", sens), ("specificity", spec)):
        lo, hi = percentile_interval(rep.astype(float), level)
        out[f"{name}_low"], out[f"{name}_high"] = float(lo), float(hi)
    return out


def chain_table(patients: dict[str, pd.DataFrame], final: dict[str, dict], cohorts: list[str], select,
                cfg: dict, level: float) -> pd.DataFrame:  # fmt: skip
    """Whole-chain intervals of each final model at its pooled cut-off on each evaluated cohort.

    `select(patients, fold, cohort)` picks a cohort's patients (evidence._select with the cohort names bound).
    Only final models whose cut-off is the pooled out-of-fold one (the default) are bootstrapped.
    """
    scr, ev = cfg.get("screening", {}), cfg.get("evaluation", {})
    n_boot = int(ev.get("n_bootstrap", 1000))
    target = float(scr.get("target_sensitivity", 0.90))
    conf = scr.get("sensitivity_confidence")
    conf = None if conf is None else float(conf)
    rows = []
    if n_boot <= 0:
        return pd.DataFrame(columns=CHAIN_COLUMNS)
    for model, info in final.items():
        if info.get("operating_point") != "pooled":
            continue
        p = patients[model]
        dev = p[(p["split"] == "val") & (p["fold"] >= 0)]
        if dev.empty or dev["lge"].sum() == 0 or dev["patient_id"].duplicated().any():
            continue
        for cohort in cohorts:
            pc = select(p, info["fold"], cohort)
            if pc.empty or pc["lge"].nunique() < 2:
                continue
            r = chain_bootstrap(dev["lge"].to_numpy(), dev["prob"].to_numpy(), pc["lge"].to_numpy(),
                                pc["prob"].to_numpy(), target, conf, n_boot,
                                group_seed(int(cfg.get("seed", schema_default("seed"))), "chain", model, cohort), level)  # fmt: skip
            rows.append({"model": model, "fold": info["fold"], "cohort": cohort, **r})
    return pd.DataFrame(rows, columns=CHAIN_COLUMNS)
