"""The report's headline box and its evidence sections (intervals, calibration, clinical utility, subgroups,
external cohorts, AUC differences), as HTML fragments that `report.build_report` places.

Kept apart from report.py so the page layout and these sections change independently. Every number is read
from the files of `evaluation.evidence`, as the report rule declares them (`ReportInputs`); a file that does not
exist yet (an older run) gives a sentence saying so, never a crash.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from cinescar.evaluation.html_parts import _fmt_p, _img, _table
from cinescar.evaluation.plots import (LABELS, cohort_title, decision_figure, flow_figure, instability_figure,
                                      reliability_figure, to_base64_png)
from cinescar.evaluation.report_inputs import ReportInputs
from cinescar.evaluation.tables import format_interval, interval_table

DOCS = Path(__file__).resolve().parents[3] / "docs" / "evaluation.md"
INTERVAL_NAMES = {"sensitivity": "Sensitivity", "specificity": "Specificity", "ppv": "PPV", "npv": "NPV",
                  "accuracy": "Accuracy", "auc": "AUC (DeLong)", "avoided_per_100": "LGE avoided /100",
                  "missed_per_100": "Scar missed /100"}  # fmt: skip
COHORT_ORDER = {"val": 0, "test": 1, "external": 2}
PER_100_DIGITS = {"avoided_per_100": 0, "missed_per_100": 0}


def _cohort_name(cohort: str, final_fold: int | None = None) -> str:
    if cohort == "val":
        return "development (out of fold)" if final_fold is not None and final_fold < 0 else "validation (final fold)"
    return cohort_title(cohort)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    key = df["cohort"].map(lambda c: COHORT_ORDER.get(c, 3)).astype(int)
    return df.assign(_k=key).sort_values(["_k", "cohort"], kind="stable").drop(columns="_k")


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in cohort order, with the report's model labels and cohort names (the fold names the final model)."""
    d = _sorted(df)
    return d.assign(model=d["model"].map(lambda m: LABELS.get(m, m)),
                    cohort=[_cohort_name(c, int(f)) for c, f in zip(d["cohort"], d["fold"], strict=True)])


def _final_rows(df: pd.DataFrame, final: dict, op: str | None = None) -> pd.DataFrame:
    if df.empty:
        return df
    keep = pd.Series(False, index=df.index)
    for model, info in final.items():
        keep |= (df["model"] == model) & (df["fold"].astype(str) == str(info["fold"]))
    if op is not None and "operating_point" in df.columns:
        keep &= df["operating_point"] == op
    return df[keep]


def docs_link(out_html: Path) -> str:
    """A link to docs/evaluation.md relative to the report when both sit in one repository; else its name."""
    try:
        rel = os.path.relpath(DOCS, Path(out_html).resolve().parent)
    except ValueError:
        rel = None
    if DOCS.exists() and rel is not None and not rel.startswith("../" * 4):
        return f"<a href='{html.escape(rel)}#reading-the-report-tripodai'>docs/evaluation.md</a>"
    return "<code>docs/evaluation.md</code> (section “Reading the report: TRIPOD+AI”)"


def interval_methods(ev: dict) -> str:
    """In words, which interval each kind of number carries (evidence.json)."""
    n_boot = int(ev.get("bootstrap", {}).get("n_bootstrap", 0))
    boot = f"stratified patient-level bootstrap, {n_boot} replicates"
    prop = "Wilson score" if ev.get("proportion_interval", "wilson") == "wilson" else boot
    return (f"proportions at the cut-off (sensitivity … LGE scans avoided): {prop}; AUC: DeLong; AUC differences: "
            f"DeLong Wald (headline, sentences, incremental.csv) and, beside it in the table of all pairs, {boot} "
            f"(percentile); Brier score: {boot}; calibration intercept and slope: Wald")


def headline_html(files: ReportInputs, out_html: str | Path) -> str:
    """The box at the top: cohorts and prevalence per role, optimistic numbers, clinical comparison, utility."""
    if files.path("evidence.json") is None:
        return "<div class='headline'><p>(no evidence.json: intervals and the headline need a newer evaluation)</p></div>"
    ev = files.json("evidence")
    final = files.json("final_models")
    summary = files.json("summary")
    level = float(ev.get("bootstrap", {}).get("level", 0.95))
    parts = ["<div class='headline'><h2 style='margin-top:0'>At a glance</h2>"]
    sizes = pd.DataFrame(ev.get("cohorts", []))
    if len(sizes):
        sizes = sizes.assign(prevalence=[f"{100 * p:.0f} %" for p in sizes["prevalence"]])
        sizes = sizes.rename(columns={"role": "Cohort", "n_patients": "Patients", "n_pos": "LGE+",
                                      "prevalence": "Prevalence"})[["Cohort", "Patients", "LGE+", "Prevalence"]]
        parts.append(sizes.to_html(index=False, escape=True, border=0))
    # the study's one pre-specified question first (cinescar.evaluation.primary), then the descriptive rest
    primary = summary.get("primary_comparison")
    if primary is not None:
        from cinescar.evaluation.primary import primary_sentence

        parts.append(f"<p class='primary'><b>{html.escape(primary_sentence(primary))}</b></p>")
        if primary.get("how_chosen"):
            parts.append(f"<p class='note'>How the primary comparison was fixed: {html.escape(primary['how_chosen'])}; "
                         "its interval's level is 1 − α, so the interval lies above 0 exactly when the test rejects "
                         "with ΔAUC &gt; 0.</p>")
    comp = pd.DataFrame(ev.get("clinical_comparison", []))
    parts.append("<p><b>Do the images add to the clinical variables?</b> ")
    if comp.empty:
        notes = summary.get("models_not_available", {}) or {}
        why = "; ".join(str(v) for v in notes.values()) if notes else "no clinical and combined models in this run"
        parts.append(f"Not answered here: {html.escape(why)}.</p>")
    else:
        parts.append(f"AUC of each combined (image + clinical) model minus the clinical model's, DeLong Wald "
                     f"interval ({level:.0%}; the primary row at 1 − α by its own method) and DeLong's p. Only the "
                     "primary row carries a verdict; the others are descriptive.</p>")  # fmt: skip
        if "role" not in comp.columns:  # an older evidence.json
            comp = comp.assign(role="descriptive", verdict="descriptive")
        comp = pd.concat([comp[comp["role"] == "primary"], _sorted(comp[comp["role"] != "primary"])])
        oof = min((int(v["fold"]) for v in final.values()), default=0)  # −1: the mean final model
        comp["Cohort"] = comp["cohort"].map(lambda c: _cohort_name(c, oof))
        comp["Image model"] = comp["image_model"].map(lambda m: LABELS.get(m, m))
        comp["ΔAUC vs clinical"] = [format_interval(d, lo, hi) for d, lo, hi in
                                    zip(comp["diff"], comp["diff_low"], comp["diff_high"], strict=True)]  # fmt: skip
        comp["p"] = comp["p"].map(lambda p: "–" if p != p else ("<0.001" if p < 0.001 else f"{p:.3f}"))
        comp["Role"] = comp["role"]
        comp["Images added discrimination?"] = [v if r == "primary" else "descriptive (no verdict)"
                                                for r, v in zip(comp["role"], comp["verdict"], strict=True)]
        parts.append(comp[["Role", "Image model", "Cohort", "n_patients", "ΔAUC vs clinical", "p",
                           "Images added discrimination?"]].to_html(index=False, escape=True, border=0))
    for sentence in summary.get("incremental", [])[1 if primary is not None else 0:]:
        parts.append(f"<p class='note'>{html.escape(str(sentence))}</p>")
    if summary.get("multiplicity"):
        parts.append(f"<p class='note'>{html.escape(summary['multiplicity'])}</p>")
    # utility of the shipped (final) models at the default operating point
    util = _final_rows(files.csv("utility"), final, ev.get("default_operating_point"))
    if len(util):
        util = _sorted(util[util["cohort"] != "val"])
        cell = [f"sensitivity {format_interval(se, sl, sh, 2)}; {format_interval(a, al, ah, 0)} avoided, "
                f"{format_interval(m, ml, mh, 0)} missed" for se, sl, sh, a, al, ah, m, ml, mh
                in zip(util["sensitivity"], util["sensitivity_low"], util["sensitivity_high"], util["avoided_per_100"],
                       util["avoided_per_100_low"], util["avoided_per_100_high"], util["missed_per_100"],
                       util["missed_per_100_low"], util["missed_per_100_high"], strict=True)]
        grid = util.assign(cell=cell, Cohort=util["cohort"].map(_cohort_name)).pivot_table(
            index="model", columns="Cohort", values="cell", aggfunc="first", sort=False)
        grid.index = [LABELS.get(m, m) for m in grid.index]
        parts.append("<p><b>Per 100 patients</b> at the default cut-off (final models; each cohort's prevalence as "
                     "above): the sensitivity reached, LGE scans avoided, and scar-positive patients among them "
                     "(missed). The per-100 figures, like PPV and NPV, depend on the cohort's prevalence; sensitivity "
                     "and specificity do not.</p>")
        parts.append(grid.to_html(escape=True, border=0))
    ss = files.csv("sample_size")
    if len(ss):
        from cinescar.evaluation.tripod import sample_size_sentence

        target = float(summary.get("target_sensitivity", 0.90))
        parts.append(f"<p class='note'>{html.escape(sample_size_sentence(ss, target))}</p>")
    opt = ev.get("optimistic", [])
    if opt:
        parts.append("<p class='optimistic'><b>Optimistic numbers</b> (they overstate what new patients would "
                     "see): " + "; ".join(html.escape(o) for o in opt) + ".</p>")
    names = ev.get("external_cohorts", [])
    if names:
        parts.append(f"<p>External cohorts, each reported on its own: {html.escape(', '.join(names))}.</p>")
    parts.append(f"<p class='note'>Intervals ({level:.0%}): {interval_methods(ev)}. The cut-off itself, the "
                 "reliability points and the pooling cost carry no interval. PPV, NPV and the per-100 figures depend "
                 "on each cohort's prevalence (above) and do not transfer to a population with another. "
                 f"What this report covers of TRIPOD+AI, and what it does not: {docs_link(Path(out_html))}.</p></div>")
    return "".join(parts)


def evidence_html(files: ReportInputs, level: float) -> str:
    """Sections: intervals of the final models, AUC differences, calibration, clinical utility, subgroups."""
    if files.path("evidence.json") is None:
        return ""
    ev = files.json("evidence")
    final = files.json("final_models", required=True)
    op = ev.get("default_operating_point")
    parts = []

    mci = _final_rows(files.csv("metrics_ci"), final)
    parts.append("<h2>Final models with intervals</h2>")
    parts.append(f"<p class='note'>{level:.0%} intervals — {interval_methods(ev)}. "
                 "Development = the pooled out-of-fold validation patients on which the cut-off was set "
                 "(optimistic for that reason). A bootstrap interval 1.00 (1.00–1.00) means every patient of that "
                 "class fell on one side: the bootstrap cannot see beyond the patients it has.</p>")
    if len(mci):
        auc = mci.rename(columns={"auc_ci_low": "auc_low", "auc_ci_high": "auc_high"})
        t = interval_table(auc, list(INTERVAL_NAMES), PER_100_DIGITS)
        for o, g in t.groupby("operating_point", sort=False):
            g = _labelled(g)
            parts.append(f"<h3>Operating point: {html.escape(str(o))}</h3>")
            parts.append(_table(g[["model", "cohort", "n_patients", "n_pos", "cutoff", *INTERVAL_NAMES]]
                                .rename(columns=INTERVAL_NAMES), digits=3))  # fmt: skip
    diffs = files.csv("auc_differences")
    parts.append("<h3>AUC differences between final models</h3>")
    if len(diffs):
        d = _sorted(diffs).assign(model_a=lambda x: x["model_a"].map(lambda m: LABELS.get(m, m)),
                                  model_b=lambda x: x["model_b"].map(lambda m: LABELS.get(m, m)),
                                  cohort=lambda x: x["cohort"].map(_cohort_name))
        d["ΔAUC (a − b)"] = [format_interval(v, lo, hi, 3) for v, lo, hi in
                             zip(d["diff"], d["diff_low"], d["diff_high"], strict=True)]  # fmt: skip
        parts.append(_table(d[["cohort", "model_a", "model_b", "n_patients", "auc_a", "auc_b", "ΔAUC (a − b)", "p"]],
                            {"p": _fmt_p}, digits=3))  # fmt: skip
    else:
        parts.append("<p class='note'>(no data)</p>")

    calib = files.csv("calibration")
    rel = files.csv("reliability")
    flex = files.csv("calibration_curve")
    recal = files.csv("recalibration")
    parts.append("<h2>Calibration: are the probabilities risks?</h2><p class='note'>Image models trained with "
                 "balanced class weights, and a patient's probability taken as the maximum over its images, give "
                 "scores rather than risks. Brier score (bootstrap interval); calibration intercept (logistic "
                 "recalibration with logit(p) as offset; 0 ideal, &lt; 0: probabilities too high) and slope "
                 "(two-parameter fit; 1 ideal, &lt; 1: too extreme), Wald intervals; no slope where the classes are "
                 "(nearly) separated, and a note where probabilities of exactly 0 or 1 were clipped (the clip then "
                 "sets part of the slope). Curves: logistic fit on a 3-knot restricted cubic spline of logit(p), "
                 "band from refits on the stratified bootstrap resamples. <i>Recalibrated on development</i>: the "
                 "logistic map logit p* = a + b·logit p fitted on the pooled out-of-fold development patients only, "
                 "applied unchanged to test and external patients. Data: calibration.csv, calibration_curve.csv, "
                 "reliability.csv, recalibration.csv.</p>")  # fmt: skip
    if len(calib):
        if "risk" not in calib.columns:
            calib = calib.assign(risk="as scored")
        c = _labelled(calib)
        c = interval_table(c, ["brier", "cal_intercept", "cal_slope"])
        cols = [k for k in ["model", "cohort", "risk", "n_patients", "n_pos", "n_clipped", "brier", "cal_intercept",
                            "cal_slope", "slope_note"] if k in c.columns]  # fmt: skip
        parts.append(_table(c[cols]))
        if len(recal):
            r = recal.assign(model=recal["model"].map(lambda m: LABELS.get(m, m)))
            parts.append("<p class='note'>Recalibration maps (fitted on development patients only):</p>")
            parts.append(_table(r[["model", "a", "b", "n_patients", "n_pos", "note"]], digits=3))
        parts.append("<div>")
        for cohort in _sorted(calib.drop_duplicates("cohort"))["cohort"]:
            if cohort == "val":
                continue
            for risk in dict.fromkeys(calib[calib["cohort"] == cohort]["risk"]):
                fig = reliability_figure(rel, calib, cohort, flex, risk)
                parts.append(f"<figure>{_img(to_base64_png(fig), f'calibration {cohort} {risk}')}</figure>")
        parts.append("</div>")

    dc = files.csv("decision_curve")
    util = _final_rows(files.csv("utility"), final)
    parts.append("<h2>Clinical utility</h2><p class='note'>Decision curves: net benefit of an LGE scan for "
                 "patients with p ≥ p<sub>t</sub>, against scanning everyone and no one (Vickers &amp; Elkin 2006), "
                 "with bootstrap bands; they read probabilities as risks, so read them with the calibration above — "
                 "the curves on recalibrated risks are the ones to read as risks. Per 100 patients at the "
                 "cut-off: LGE scans avoided (patients called negative) and scar-positive patients among them "
                 "(missed), on each cohort's own prevalence (PPV, NPV and per-100 figures change with prevalence). "
                 "Data: decision_curve.csv (also net LGE scans avoided per 100 against scanning everyone), "
                 "utility.csv.</p>")  # fmt: skip
    if len(util):
        u = _labelled(util)
        u = interval_table(u, ["avoided_per_100", "missed_per_100", "sensitivity", "specificity"], PER_100_DIGITS)
        u = u.rename(columns={"avoided_per_100": "LGE avoided /100", "missed_per_100": "Scar missed /100",
                              "specificity": "Specificity (scar-free spared)"})
        parts.append(_table(u[["model", "cohort", "operating_point", "cutoff", "n_patients", "LGE avoided /100",
                               "Scar missed /100", "sensitivity", "Specificity (scar-free spared)"]], digits=3))
    chain = files.csv("cutoff_uncertainty")
    if len(chain):
        parts.append("<h3>The cut-off's own uncertainty</h3><p class='note'>Each bootstrap replicate resamples the "
                     "development patients, sets the cut-off on them by the configured rule, resamples the evaluated "
                     "cohort and scores it at that cut-off: these intervals hold the cut-off's uncertainty as well as "
                     "the cohort's (the ones above treat the cut-off as fixed). Data: cutoff_uncertainty.csv.</p>")
        c = _labelled(chain)
        c = interval_table(c, ["cutoff", "sensitivity", "specificity"])
        parts.append(_table(c[["model", "cohort", "n_boot", "cutoff", "sensitivity", "specificity"]], digits=3))
    if len(dc):
        if "risk" not in dc.columns:
            dc = dc.assign(risk="as scored")
        parts.append("<div>")
        for cohort in _sorted(dc.drop_duplicates("cohort"))["cohort"]:
            if cohort == "val":
                continue
            for risk in dict.fromkeys(dc[dc["cohort"] == cohort]["risk"]):
                fig = decision_figure(dc, cohort, risk)
                parts.append(f"<figure>{_img(to_base64_png(fig), f'decision curve {cohort} {risk}')}</figure>")
        parts.append("</div>")

    parts.append("<h2>Data checks (TRIPOD+AI)</h2>")
    flow = files.csv("flow")
    if len(flow):
        parts.append("<h3>Participant flow</h3><p class='note'>Patients of the manifest per source, per analysis "
                     "role, and those no analysis holds. Data: flow.csv.</p>")
        parts.append(f"<figure>{_img(to_base64_png(flow_figure(flow)), 'participant flow')}</figure>")
    mv = files.csv("missing_values")
    parts.append("<h3>Missing clinical values before imputation</h3><p class='note'>Per clinical variable "
                 "(clinical.variables) and manifest cohort; a variable not in the manifest is missing for all. "
                 "Data: missing_values.csv.</p>")
    parts.append(_table(mv, digits=3) if len(mv) else "<p class='note'>(no clinical variables, or no manifest)</p>")
    iv = files.csv("images_vs_score")
    parts.append("<h3>Number of images and the score, LGE− patients</h3><p class='note'>A patient's probability is "
                 "the maximum over its images, and the maximum of more images is larger; the slice count tracks LV "
                 "size. A positive Spearman ρ among scar-free patients means the score partly counts images. "
                 "Development = pooled out of fold; test and external = final model. Descriptive. "
                 "Data: images_vs_score.csv.</p>")
    if len(iv):
        iv = _sorted(iv).assign(model=lambda d: d["model"].map(lambda m: LABELS.get(m, m)),
                                cohort=lambda d: d["cohort"].map(_cohort_name))
        parts.append(_table(iv[["model", "cohort", "n_neg", "median_images", "spearman_rho", "p"]], {"p": _fmt_p},
                            digits=2))  # fmt: skip
    ins, pts = files.csv("instability"), files.csv("instability_points")
    parts.append("<h3>Prediction instability across the fold models</h3><p class='note'>Riley &amp; Collins "
                 "(BMJ 2023): each fold model's probability against the final (mean) model's for the same patient; "
                 "MAPE = mean |p<sub>fold</sub> − p<sub>final</sub>|; calls differ = share of fold-model decisions at "
                 "the final cut-off that differ from the final model's. Data: instability.csv, "
                 "instability_points.csv.</p>")
    if len(ins):
        t = ins.assign(model=ins["model"].map(lambda m: LABELS.get(m, m)), cohort=ins["cohort"].map(_cohort_name))
        parts.append(_table(t, digits=3))
        parts.append("<div>")
        for cohort in dict.fromkeys(ins["cohort"]):
            fig = instability_figure(pts, ins, cohort)
            parts.append(f"<figure>{_img(to_base64_png(fig), f'instability {cohort}')}</figure>")
        parts.append("</div>")
    else:
        parts.append("<p class='note'>(no mean final model with fold models to compare)</p>")
    sg = files.csv("subgroups")
    parts.append(f"<h2>Subgroups: centre, vendor, sex, age</h2><p class='note'>Final models at the {html.escape(str(op))} "
                 "cut-off; metrics only where a subgroup holds both LGE classes; n always; age groups &lt; 50 and ≥ 50 "
                 "years fixed in advance. Descriptive: no subgroup test. AUC interval by DeLong, "
                 "sensitivity/specificity as the proportions above. Data: subgroups.csv.</p>")
    if len(sg):
        s = _labelled(sg)
        s = interval_table(s.rename(columns={"auc_ci_low": "auc_low", "auc_ci_high": "auc_high"}),
                           ["auc", "sensitivity", "specificity"])
        parts.append(_table(s[["model", "cohort", "variable", "level", "n_patients", "n_pos", "auc", "sensitivity",
                               "specificity", "note"]]))
    else:
        parts.append("<p class='note'>(no subgroup holds both classes, or no manifest)</p>")
    return "".join(parts)
