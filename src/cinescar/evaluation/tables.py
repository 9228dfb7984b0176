"""The study's tables: cohort characteristics (paper Tables 1–2), reproducibility (Tables 3–4) and the
features that recur across folds (Tables S2–S3).

Statistics follow the paper's "Statistics and data analysis": continuous variables as mean ± SD (median),
compared between LGE+ and LGE− with a two-sided t-test when a Shapiro–Wilk test does not reject normality
in *both* groups (α = 0.05), otherwise the Mann–Whitney U test; categorical variables as n (%) compared with
Pearson's χ² test (no Yates continuity correction: the paper names Pearson's test). The t-test is Welch's
(no equal-variance assumption), a choice the paper does not state. Missing columns are skipped and missing
values are left out per variable, with the number available reported beside every summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from cinescar.cohort.contract import CLINICAL_CATEGORICAL, CLINICAL_NUMERIC, cohort_role, external_name
from cinescar.errors import CinescarError

CATEGORICAL = [*CLINICAL_CATEGORICAL, "center", "vendor"]
CONTINUOUS = list(CLINICAL_NUMERIC)
LABELS = {
    "sex": "Sex", "center": "Centre", "vendor": "Vendor", "age": "Age (years)", "height": "Height (cm)",
    "weight": "Weight (kg)", "BMI": "BMI (kg/m²)", "LVEDV": "LVEDV (ml)", "LVESV": "LVESV (ml)",
    "SV": "SV (ml)", "LVEF": "LVEF (%)", "CO": "CO (l/min)", "LVM": "LVM (g)", "MWT": "LV-MWT (mm)",
    "lge": "LGE presence",
}  # fmt: skip
TABLE_COLUMNS = ["section", "variable", "label", "level", "all", "lge_pos", "lge_neg",
                 "n_all", "n_pos", "n_neg", "test", "statistic", "p"]  # fmt: skip
TABLE_METRICS = ["sensitivity", "specificity", "ppv", "npv", "accuracy", "auc", "spared_scar_free", "spared_all"]


# --------------------------------------------------------------------------------------------- tests
def compare_continuous(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> dict[str, object]:
    """t-test if Shapiro–Wilk accepts normality in both groups, else Mann–Whitney U (both two-sided).

    Shapiro–Wilk needs ≥ 3 values; a group with fewer (or with no spread) counts as not shown normal, so
    the rank test is used. Fewer than 2 values in a group → no test (NaN).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return {"test": "", "statistic": float("nan"), "p": float("nan")}

    def _normal(x: np.ndarray) -> bool:
        if x.size < 3 or np.ptp(x) == 0:
            return False
        return bool(stats.shapiro(x).pvalue >= alpha)

    if _normal(a) and _normal(b):
        res = stats.ttest_ind(a, b, equal_var=False)
        return {"test": "t-test (Welch)", "statistic": float(res.statistic), "p": float(res.pvalue)}
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return {"test": "Mann-Whitney U", "statistic": float(res.statistic), "p": float(res.pvalue)}


def compare_categorical(a: pd.Series, b: pd.Series) -> dict[str, object]:
    """Pearson's χ² test of independence between group (a vs b) and the category (missing left out)."""
    a, b = pd.Series(a).dropna().astype(str), pd.Series(b).dropna().astype(str)
    levels = sorted(set(a) | set(b))
    table = np.array([[int((a == lv).sum()) for lv in levels], [int((b == lv).sum()) for lv in levels]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return {"test": "", "statistic": float("nan"), "p": float("nan")}
    res = stats.chi2_contingency(table, correction=False)
    return {"test": "chi-squared", "statistic": float(res.statistic), "p": float(res.pvalue)}


# ----------------------------------------------------------------------------------------- summaries
def _fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def summarise_continuous(x: pd.Series, decimals: int = 1) -> str:
    """`mean ± SD (median)`, missing values left out; empty → ''."""
    v = pd.to_numeric(pd.Series(x), errors="coerce").dropna().to_numpy(dtype=float)
    if v.size == 0:
        return ""
    sd = v.std(ddof=1) if v.size > 1 else float("nan")
    return f"{_fmt(v.mean(), decimals)} ± {_fmt(sd, decimals)} ({_fmt(float(np.median(v)), decimals)})"


def summarise_count(x: pd.Series, level: str) -> str:
    """`n (%)` of `level` among the non-missing values."""
    v = pd.Series(x).dropna().astype(str)
    if v.empty:
        return ""
    n = int((v == level).sum())
    return f"{n} ({100.0 * n / len(v):.0f}%)"


def cohort_table(patients: pd.DataFrame, section: str, alpha: float = 0.05, decimals: int = 1) -> pd.DataFrame:
    """One section of Table 1/2: All, LGE+, LGE− columns and the LGE+ vs LGE− test per variable.

    Rows (long format, machine-readable): the patient count, then each categorical variable present
    (one row per level, the test on the first), then each continuous variable present, then LGE presence.
    """
    if "lge" not in patients.columns:
        raise CinescarError("the manifest has no 'lge' column")
    lge = pd.to_numeric(patients["lge"], errors="coerce")
    if lge.isna().any() or not set(lge.unique()) <= {0, 1}:
        bad = patients.loc[lge.isna() | ~lge.isin([0, 1]), "patient_id"].astype(str).tolist()[:5]
        raise CinescarError(f"lge must be 0/1 for every patient (section {section}); offending patients {bad}")
    pos, neg = patients[lge == 1], patients[lge == 0]
    rows: list[dict] = [{"section": section, "variable": "n", "label": "Patients", "level": "",
                         "all": str(len(patients)), "lge_pos": str(len(pos)), "lge_neg": str(len(neg)),
                         "n_all": len(patients), "n_pos": len(pos), "n_neg": len(neg),
                         "test": "", "statistic": float("nan"), "p": float("nan")}]  # fmt: skip

    def _n(df: pd.DataFrame, col: str) -> int:
        return int(df[col].notna().sum())

    for col in CATEGORICAL:
        if col not in patients.columns or patients[col].notna().sum() == 0:
            continue
        test = compare_categorical(pos[col], neg[col])
        levels = sorted(patients[col].dropna().astype(str).unique())
        for i, level in enumerate(levels):
            rows.append({"section": section, "variable": col, "label": LABELS.get(col, col), "level": level,
                         "all": summarise_count(patients[col], level), "lge_pos": summarise_count(pos[col], level),
                         "lge_neg": summarise_count(neg[col], level), "n_all": _n(patients, col),
                         "n_pos": _n(pos, col), "n_neg": _n(neg, col),
                         **(test if i == 0 else {"test": "", "statistic": float("nan"), "p": float("nan")})})
    for col in CONTINUOUS:
        if col not in patients.columns:
            continue
        values = pd.to_numeric(patients[col], errors="coerce")
        if values.notna().sum() == 0:
            continue
        vp, vn = values[lge == 1], values[lge == 0]
        rows.append({"section": section, "variable": col, "label": LABELS.get(col, col), "level": "",
                     "all": summarise_continuous(values, decimals), "lge_pos": summarise_continuous(vp, decimals),
                     "lge_neg": summarise_continuous(vn, decimals), "n_all": int(values.notna().sum()),
                     "n_pos": int(vp.notna().sum()), "n_neg": int(vn.notna().sum()),
                     **compare_continuous(vp.to_numpy(), vn.to_numpy(), alpha)})
    rows.append({"section": section, "variable": "lge", "label": LABELS["lge"], "level": "1",
                 "all": summarise_count(lge.astype(int).astype(str), "1"),
                 "lge_pos": f"{len(pos)} (100%)" if len(pos) else "0", "lge_neg": "0",
                 "n_all": len(patients), "n_pos": len(pos), "n_neg": len(neg),
                 "test": "", "statistic": float("nan"), "p": float("nan")})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def study_cohort_tables(manifest: pd.DataFrame, splits: dict, alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1 (internal: all, development, internal test) and Table 2 (external) from the manifest."""
    pid = manifest["patient_id"].astype(str)
    internal = manifest[manifest["cohort"].map(cohort_role) == "internal"]
    test = manifest[pid.isin(set(splits["test"]))]
    dev = internal[~internal["patient_id"].astype(str).isin(set(splits["test"]))]
    external = manifest[pid.isin(set(splits["external"]))]
    table1 = pd.concat(
        [cohort_table(internal, "All internal patients", alpha), cohort_table(dev, "Development cohort", alpha),
         cohort_table(test, "Internal testing cohort", alpha)], ignore_index=True)  # fmt: skip
    if not len(external):
        return table1, pd.DataFrame(columns=TABLE_COLUMNS)
    names = external["cohort"].map(external_name)
    sections = [cohort_table(external, "External cohort", alpha)]
    if names.nunique() > 1:  # several external cohorts: all together, then each on its own
        sections = [cohort_table(external, "All external cohorts", alpha)] + [
            cohort_table(external[names == name], f"External cohort {name}", alpha) for name in sorted(names.unique())]
    return table1, pd.concat(sections, ignore_index=True)


# ----------------------------------------------------------------------------------- intervals in tables
def format_interval(value: object, low: object, high: object, digits: int = 2) -> str:
    """`0.80 (0.52–0.95)`, `−0.10 (−0.30 to 0.12)`; the value alone when the interval is missing; an en dash
    when the value is."""
    try:
        v, lo, hi = float(value), float(low), float(high)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    if not np.isfinite(v):
        return "–"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{v:.{digits}f}"
    v, lo, hi = (round(x, digits) + 0.0 for x in (v, lo, hi))  # + 0.0: no "−0.00"
    sep = " to " if lo < 0 or hi < 0 else "–"  # "-3.27–-0.42" would read as a subtraction
    return f"{v:.{digits}f} ({lo:.{digits}f}{sep}{hi:.{digits}f})".replace("-", "−")


def interval_table(df: pd.DataFrame, metrics: list[str], digits: int | dict[str, int] = 2,
                   low: str = "{}_low", high: str = "{}_high") -> pd.DataFrame:  # fmt: skip
    """Replace each metric column by its `value (low–high)` string; the low/high columns are dropped.

    The CSVs keep the numbers in separate columns; this is only for the report's HTML tables. `digits` may
    be one number or a per-metric dict (default 2; counts per 100 patients read best with 0).
    """
    out = df.copy()
    for m in metrics:
        if m not in out.columns:
            continue
        lo_col, hi_col = low.format(m), high.format(m)
        lows = out[lo_col] if lo_col in out.columns else pd.Series(np.nan, index=out.index)
        highs = out[hi_col] if hi_col in out.columns else pd.Series(np.nan, index=out.index)
        d = digits.get(m, 2) if isinstance(digits, dict) else digits
        out[m] = [format_interval(v, a, b, d) for v, a, b in zip(out[m], lows, highs, strict=True)]
        out = out.drop(columns=[c for c in (lo_col, hi_col) if c in out.columns])
    return out


# ------------------------------------------------------------------------------ reproducibility tables
def reproducibility_table(metrics: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """Paper Table 3/4 layout: per model, operating point and metric, one column per fold, then mean and SD.

    `metrics` is the evaluation's metrics table (columns model, fold, cohort, operating_point, metric...).
    Rows of the `optimistic` operating point (if any) keep that label in the `operating_point` column.
    """
    m = metrics[metrics["cohort"] == cohort]
    rows = []
    for (model, op), mm in m.groupby(["model", "operating_point"], sort=False):
        mm = mm.sort_values("fold")
        for metric in ["cutoff", *TABLE_METRICS]:
            vals = mm[metric].to_numpy(dtype=float)
            row = {"model": model, "operating_point": op, "metric": metric}
            row.update({f"fold_{int(f)}": float(v) for f, v in zip(mm["fold"], vals, strict=True)})
            row["mean"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            row["sd"] = float(np.nanstd(vals, ddof=1)) if np.isfinite(vals).sum() > 1 else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def final_model_table(metrics: pd.DataFrame, final_models: dict, cohort: str) -> pd.DataFrame:
    """Paper Table 4 layout: one row per model (its final fold), metrics on `cohort`."""
    rows = []
    for model, info in final_models.items():
        sel = metrics[(metrics["model"] == model) & (metrics["fold"] == int(info["fold"]))
                      & (metrics["cohort"] == cohort)]  # fmt: skip
        for _, r in sel.iterrows():
            rows.append({"model": model, "fold": int(info["fold"]), "operating_point": r["operating_point"],
                         **{k: r[k] for k in ["cutoff", "n_patients", "n_pos", "n_neg", *TABLE_METRICS,
                                              "auc_ci_low", "auc_ci_high"]}})
    return pd.DataFrame(rows)


def feature_recurrence(selected: pd.DataFrame, k: int | None = None, n_folds: int | None = None) -> pd.DataFrame:
    """Which selected features recur across folds (paper Tables S2/S3).

    `selected` has one row per (fold, feature) — with a `k` column when it holds several candidate k, in
    which case the chosen `k` must be given. Returns feature, kind (radiomics/dl), n_folds, share, folds
    (";"-joined), most often chosen first.
    """
    missing = [c for c in ("fold", "feature") if c not in selected.columns]
    if missing:
        raise CinescarError(f"selected-features table lacks columns {missing} (has {list(selected.columns)})")
    if "k" in selected.columns:
        if k is not None:
            selected = selected[selected["k"].astype(int) == int(k)]
        elif selected["k"].nunique() > 1:
            ks = sorted(selected["k"].unique())
            raise CinescarError(f"selected-features table holds k in {ks}: give the chosen k")
    total = n_folds or selected["fold"].nunique()
    g = selected.groupby("feature")["fold"].agg(lambda f: sorted({int(x) for x in f}))
    out = pd.DataFrame({"feature": g.index, "n_folds": g.map(len).to_numpy(),
                        "folds": g.map(lambda f: ";".join(map(str, f))).to_numpy()})
    out["share"] = out["n_folds"] / total if total else float("nan")
    out["kind"] = np.where(out["feature"].str.startswith("dl_"), "dl", "radiomics")
    return out.sort_values(["n_folds", "feature"], ascending=[False, True]).reset_index(drop=True)[
        ["feature", "kind", "n_folds", "share", "folds"]]
