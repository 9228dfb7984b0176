"""The study's one pre-specified question and its one verdict: do the images add discrimination to the
clinical model?

Why: the report used to answer that question twice — the headline table said "yes" when the *bootstrap*
interval of ΔAUC lay above 0, the sentences below it when *DeLong's* p < 0.05 — and the two disagree in a few
per cent of small studies with a real gain (the percentile interval under-covers at 5–15 LGE+ patients).
About 560 p-values are printed besides (every DeLong pair per fold and cohort). A reader needs to know which
one is the study's question. Here it is fixed *before* any test patient is scored (`evaluation.primary_comparison`
in config/schema.yaml):

- **model** — a combined (image + clinical) model, or `auto`: the combined model with the highest AUC on the
  pooled out-of-fold *development* patients (ties: the order of `cinescar.models.IMAGE_MODELS`). Test and
  external patients play no part in the choice, so the comparison stays confirmatory.
- **reference** — the clinical model.
- **cohort** — `auto`: the external cohort when there is one (all external patients together), else the
  internal test cohort.
- **method** — `delong` (default): ΔAUC ± z₁₋α/₂·SE with DeLong's SE and the two-sided DeLong p from the same
  z, so "interval above 0" and "p < α with ΔAUC > 0" are one and the same statement; `bootstrap`: the
  stratified percentile interval and the bootstrap p = 2·min(P*(Δ ≤ 0), P*(Δ ≥ 0)), again one rule.

The interval's level is 1 − `evaluation.alpha`, so the interval and the test cannot disagree. The verdict is
"yes" exactly when the interval lies above 0. Every other comparison of the report is *descriptive*:
`multiplicity_sentence` says how many there are and that their p-values are not adjusted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from cinescar.config import schema_default
from cinescar.errors import CinescarError
from cinescar.evaluation.aligned import aligned
from cinescar.evaluation.bootstrap import auc_replicates, group_seed, percentile_interval, stratified_resamples
from cinescar.evaluation.delong import delong_test
from cinescar.evaluation.metrics import auc_or_nan
from cinescar.evaluation.screening import pooled_validation
from cinescar.models import CLINICAL, COMBINED, IMAGE_MODELS, MODEL_LABELS

AUTO = "auto"
METHODS = ("delong", "bootstrap")
METHOD_WORDS = {"delong": "DeLong Wald interval (ΔAUC ± z·SE) and DeLong's two-sided p",
                "bootstrap": "stratified percentile bootstrap interval and bootstrap p"}  # fmt: skip


@dataclass(frozen=True)
class PrimarySpec:
    """What the primary comparison compares, resolved from the config before any test patient is scored."""

    model: str
    reference: str
    cohort: str
    method: str
    alpha: float
    how_chosen: str


def development_auc(patients: pd.DataFrame) -> float:
    """AUC on the pooled out-of-fold validation (development) patients of the fold models."""
    val = pooled_validation(patients[patients["fold"] >= 0])
    return auc_or_nan(val["lge"].to_numpy(dtype=int), val["prob"].to_numpy(dtype=float))


def resolve_spec(cfg: dict, patients: dict[str, pd.DataFrame]) -> PrimarySpec | str:
    """The primary comparison of this run, or a sentence saying why there is none."""
    ev = cfg.get("evaluation", {})
    pc = ev.get("primary_comparison", {}) or {}
    alpha = float(ev.get("alpha", 0.05))
    model, reference = str(pc.get("model", AUTO)), str(pc.get("reference", CLINICAL))
    cohort, method = str(pc.get("cohort", AUTO)), str(pc.get("method", "delong"))
    if method not in METHODS:
        raise CinescarError(f"evaluation.primary_comparison.method must be one of {METHODS}, not {method!r}")
    if reference not in patients:
        return f"no primary comparison: the reference model {reference!r} has no predictions in this run"
    if model == AUTO:
        candidates = [COMBINED[m] for m in IMAGE_MODELS if COMBINED[m] in patients]
        if not candidates:
            return "no primary comparison: no combined (image + clinical) model has predictions in this run"
        aucs = {m: development_auc(patients[m]) for m in candidates}
        finite = {m: a for m, a in aucs.items() if np.isfinite(a)}
        model = max(finite, key=lambda m: (finite[m], -candidates.index(m))) if finite else candidates[0]
        how = ("auto: the combined model with the highest AUC on the pooled out-of-fold development patients ("
               + ", ".join(f"{MODEL_LABELS.get(m, m)} {a:.3f}" for m, a in aucs.items())
               + "); test and external patients took no part in the choice")
    else:
        if model not in patients:
            return f"no primary comparison: the configured model {model!r} has no predictions in this run"
        how = "named in the configuration (evaluation.primary_comparison.model)"
    if cohort == AUTO:
        has_ext = all((p["split"] == "external").any() for p in (patients[model], patients[reference]))
        cohort = "external" if has_ext else "test"
    return PrimarySpec(model=model, reference=reference, cohort=cohort, method=method, alpha=alpha, how_chosen=how)


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p of Δ = 0: 2·min(share of replicates ≤ 0, share ≥ 0), capped at 1."""
    r = replicates[np.isfinite(replicates)]
    if r.size == 0:
        return float("nan")
    return float(min(1.0, 2.0 * min(np.mean(r <= 0), np.mean(r >= 0))))


def compare(y: np.ndarray, score_model: np.ndarray, score_reference: np.ndarray, method: str, alpha: float,
            n_boot: int = 1000, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """ΔAUC (model − reference), its (1 − α) interval and p by one method; the interval excludes 0 iff p < α
    (exactly for DeLong; for the bootstrap up to the replicates' discreteness)."""
    y = np.asarray(y, dtype=int)
    auc_m, auc_r = auc_or_nan(y, score_model), auc_or_nan(y, score_reference)
    out = {"auc": auc_m, "auc_reference": auc_r, "diff": auc_m - auc_r, "diff_low": np.nan, "diff_high": np.nan,
           "se": np.nan, "p": np.nan, "level": 1.0 - alpha}  # fmt: skip
    if method == "delong":
        d = delong_test(y, score_model, score_reference)
        z = stats.norm.ppf(1.0 - alpha / 2.0)
        out.update(se=d.se, p=d.p, diff_low=d.diff - z * d.se, diff_high=d.diff + z * d.se)
    else:
        if n_boot <= 0:
            raise CinescarError("the bootstrap primary comparison needs evaluation.n_bootstrap > 0")
        idx = stratified_resamples(y, n_boot, seed)
        reps = auc_replicates(y, score_model, idx) - auc_replicates(y, score_reference, idx)
        lo, hi = percentile_interval(reps, 1.0 - alpha)
        out.update(se=float(np.nanstd(reps, ddof=1)), p=bootstrap_p(reps), diff_low=float(lo), diff_high=float(hi))
    return out


def verdict(diff_low: float, diff_high: float) -> str:
    """The one verdict rule: 'yes' iff the interval lies above 0."""
    if not (np.isfinite(diff_low) and np.isfinite(diff_high)):
        return "not tested"
    if diff_low > 0:
        return "yes"
    return "no (interval below 0: the combined model discriminated worse)" if diff_high < 0 else "not shown"


def primary_comparison(cfg: dict, patients: dict[str, pd.DataFrame], final: dict[str, dict]) -> dict:
    """The primary comparison's spec, estimate, interval, p and verdict (summary.json `primary_comparison`)."""
    spec = resolve_spec(cfg, patients)
    if isinstance(spec, str):
        return {"available": False, "reason": spec}
    picks = {m: int(final[m]["fold"]) for m in (spec.model, spec.reference)}
    if not all(((patients[m]["split"] == spec.cohort) & (patients[m]["fold"] == f)).any() for m, f in picks.items()):
        return {"available": False, "reason": f"no primary comparison: no {spec.cohort} patients in this run",
                **asdict(spec)}  # fmt: skip
    y, scores = aligned(patients, picks, spec.cohort)
    base = {"available": True, **asdict(spec), "n_patients": int(y.size), "n_pos": int(y.sum()),
            "method_words": METHOD_WORDS[spec.method]}  # fmt: skip
    try:
        res = compare(y, scores[spec.model], scores[spec.reference], spec.method, spec.alpha,
                      int(cfg.get("evaluation", {}).get("n_bootstrap", 1000)),
                      group_seed(int(cfg.get("seed", schema_default("seed"))), "primary", spec.model, spec.cohort))  # fmt: skip
    except CinescarError as exc:  # e.g. a single LGE+ patient: DeLong's variance does not exist
        return {**base, "available": False, "reason": f"no primary comparison: {exc}"}
    return {**base, **res, "verdict": verdict(res["diff_low"], res["diff_high"])}


def primary_sentence(pc: dict) -> str:
    """The headline's first sentence: the question, the estimate, its interval and p, the verdict."""
    if not pc.get("available"):
        return f"Primary comparison: {pc.get('reason', 'not available')}."
    cohort = "external" if pc["cohort"] == "external" else "internal test"
    p = "< 0.001" if pc["p"] < 0.001 else f"= {pc['p']:.3f}"
    v = {"yes": "the images added discrimination", "not shown": "an added discrimination was not shown"}.get(
        pc["verdict"], pc["verdict"])
    return (f"Primary comparison (pre-specified): {MODEL_LABELS.get(pc['model'], pc['model'])} vs "
            f"{MODEL_LABELS.get(pc['reference'], pc['reference'])} on the {cohort} cohort "
            f"({pc['n_patients']} patients, {pc['n_pos']} LGE+): ΔAUC {pc['diff']:+.3f}, "
            f"{100 * pc['level']:.0f} % interval {pc['diff_low']:+.3f} to {pc['diff_high']:+.3f}, p {p} "
            f"({pc['method_words']}) — {v}.")


def multiplicity_sentence(n_descriptive: int, alpha: float) -> str:
    """Says that every other comparison is descriptive and what that many unadjusted tests would produce."""
    return (f"Every other comparison in this report ({n_descriptive} AUC comparisons in all: delong.csv, "
            f"incremental.csv, auc_differences.csv) is descriptive: its p-value is not adjusted for multiplicity, "
            f"and at α = {alpha:g} about {alpha * n_descriptive:.0f} of them would fall below α by chance alone "
            "if no model differed from another; none of them is a finding of the study.")
