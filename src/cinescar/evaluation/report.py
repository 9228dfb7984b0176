"""The study report: one self-contained HTML file (figures embedded as base64 PNG, no external links).

It only *reads* files, the ones its rule declares (`ReportInputs`: results/evaluation/ written by `evaluate_study`,
results/segmentation/, the Grad-CAM folds' done.json) — so every number shown is also available machine-readably. The config (YAML) and the package versions that produced the run are
printed at the end.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml

from cinescar.config import config_hash, schema_default
from cinescar.versions import package_versions
from cinescar.evaluation.html_parts import _file_b64, _fmt_num, _fmt_p, _img, _table
from cinescar.evaluation.report_evidence import evidence_html, headline_html
from cinescar.evaluation.report_inputs import ReportInputs
from cinescar.evaluation.tables import format_interval
from cinescar.evaluation.plots import LABELS, fold_auc_figure, roc_figure, to_base64_png
from cinescar.predictions import HELD_OUT

log = logging.getLogger(__name__)
METRIC_NAMES = {"cutoff": "Cut-off", "sensitivity": "Sensitivity", "specificity": "Specificity",
                "ppv": "Precision (PPV)", "npv": "NPV", "accuracy": "Accuracy", "auc": "AUC",
                "spared_scar_free": "Scar-free patients spared LGE", "spared_all": "All patients spared LGE"}
OP_NAMES = {"pooled": "cut-off from the pooled out-of-fold validation patients (default)",
            "validation": "cut-off from each fold's own validation patients",
            "optimistic": "OPTIMISTIC: cut-off chosen on this cohort itself (paper's variant)"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
     padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.4em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.headline{background:#eef4fb;border:1px solid #9bbbe0;padding:.6em 1em;margin:1em 0}
.note{color:#555;font-size:.9em}.optimistic{background:#fff3cd;padding:.5em;border-left:4px solid #e0a800}
figure{display:inline-block;margin:.5em}figcaption{font-size:.8em;color:#555;max-width:320px}
pre{background:#f6f6f6;padding:.8em;font-size:.8em;overflow-x:auto}
"""


def cutoff_sentence(cfg: dict, target: float, ops: pd.DataFrame | None = None) -> str:
    """How the cut-off was set, in words: on which patients, by which rule, and what it promises on new ones
    (with `ops`, operating_points.csv, the confidence each model's cut-off actually reaches)."""
    scr = cfg.get("screening", {})
    where = ("each fold's own validation patients" if scr.get("operating_point", "pooled") == "per_fold" else
             "the pooled out-of-fold validation patients (every development patient once, scored by the one fold "
             "model that did not train on it)")  # fmt: skip
    conf = scr.get("sensitivity_confidence")
    rule = (f"the highest threshold reaching patient-level sensitivity ≥ {target:.2f} on {where}; on new patients "
            "such a cut-off reaches the target with probability about one half (Beta law of the empirical quantile; "
            "operating_points.csv, confidence_reached)" if conf is None else
            f"the highest threshold that reaches sensitivity ≥ {target:.2f} on new patients with confidence "
            f"{float(conf):g}, set on {where} (tolerance rule, screening.sensitivity_confidence)")
    reached = ""
    if ops is not None and len(ops) and "confidence_reached" in ops.columns:
        c = pd.to_numeric(ops["confidence_reached"], errors="coerce").dropna()
        if len(c):
            lo, hi = float(c.min()), float(c.max())
            span = f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f}"
            reached = f" P(sensitivity ≥ {target:.2f} on new patients) of this run's cut-offs (Beta law): {span}"
            if conf is not None and lo < float(conf):
                reached += (f" — below the configured {float(conf):g} for some models: with so few LGE+ development "
                            "patients no cut-off reaches that confidence, and the lowest LGE+ probability is used")
            reached += "."
    return (f"The cut-off is {rule}.{reached} It is applied unchanged to the test cohorts and to the final model. The mean "
            "final model averages the fold models, so its scores are less noisy than the single-fold scores the "
            "cut-off was set on: expect its sensitivity on new patients above, and its specificity below, the "
            "development figures (benchmarks/operating_point.py); its own figures are its test and external rows.")


def gradcam_examples(done_files: Iterable[str | Path], n: int, prefer_fold: int | None = None) -> list[Path]:
    """Up to n Grad-CAM PNGs, those of the final DL model's fold first, then the other folds, sorted by name.

    `done_files`: the folds' `done.json` files the report rule declares. Only the PNGs a training job listed in
    its fold's `done.json` are shown: a PNG left over from an earlier run (other test patients, another model) is
    not this run's evidence.
    """
    if n <= 0:
        return []
    files = []
    for done in sorted(Path(d) for d in done_files):
        if not done.is_file():
            continue
        declared = json.loads(done.read_text(encoding="utf-8")).get("images", [])
        files += [done.parent / name for name in declared if (done.parent / name).is_file()]
    files = sorted(files)
    if prefer_fold is not None:
        first = [f for f in files if f"fold{prefer_fold}" in f.parts]
        files = first + [f for f in files if f not in first]
    return files[:n]


def _metric_table(table: pd.DataFrame, op: str) -> pd.DataFrame:
    t = table[table["operating_point"] == op].drop(columns="operating_point")
    t = t.assign(model=t["model"].map(lambda m: LABELS.get(m, m)), metric=t["metric"].map(METRIC_NAMES))
    return t


def _final_table(table: pd.DataFrame, op: str) -> pd.DataFrame:
    if table.empty:
        return table
    t = table[table["operating_point"] == op].drop(columns="operating_point").copy()
    t["model"] = t["model"].map(lambda m: LABELS.get(m, m))
    t["AUC (95% CI)"] = [format_interval(a, lo, hi)
                         for a, lo, hi in zip(t["auc"], t["auc_ci_low"], t["auc_ci_high"], strict=True)]
    t = t.drop(columns=["auc_ci_low", "auc_ci_high"]).rename(columns=METRIC_NAMES)
    return t


def build_report(
    files: ReportInputs,
    out_html: str | Path,
    cfg: dict,
    cohort_figure: str | Path | None = None,
    versions_out: str | Path | None = None,
) -> Path:
    """Write the self-contained HTML report from the files its rule declares (`files`, by stem); returns its
    path. `versions_out`: where the package versions go as JSON (the rule's `versions` output; default
    versions.json beside the report)."""
    ev = cfg.get("evaluation", {})
    scr = cfg.get("screening", {})
    level = float(ev.get("ci_level", 0.95))
    target = float(scr.get("target_sensitivity", 0.90))
    metrics = files.csv("metrics")
    final = files.json("final_models", required=True)
    roc = files.csv("roc")
    delong = files.csv("delong")
    table3 = files.csv("table3")
    table4 = files.csv("table4")
    table4_folds = files.csv("table4_folds")
    ops = list(dict.fromkeys(metrics["operating_point"])) if not metrics.empty else ["validation"]

    parts: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>cinescar study report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>cinescar: scar screening from non-contrast cine MRI — study report</h1>",
        f"<p class='note'>Cohort <b>{html.escape(str(cfg.get('cohort', {}).get('name', schema_default('cohort', 'name'))))}</b>, config hash "
        f"<code>{config_hash(cfg)}</code>. Models: Radiomics, DL, DL-Radiomics (Fahmy et al., JCMR 2022). "
        f"A patient's probability is the maximum over its images; a patient is positive (LGE scan needed) when "
        f"it is ≥ the cut-off. {html.escape(cutoff_sentence(cfg, target, files.csv('operating_points')))}</p>",
    ]  # fmt: skip
    if "optimistic" in ops:
        parts.append("<p class='optimistic'><b>Optimistic rows present</b> (<code>screening.cutoff_on_test: "
                     "true</code>): rows labelled OPTIMISTIC use a cut-off chosen on the evaluated cohort itself, "
                     "as the paper's code did; they overstate what a screening test would reach on new "
                     "patients.</p>")  # fmt: skip

    # --- headline box (issue 12b): cohorts, prevalence, optimistic numbers, clinical comparison, utility
    parts.append(headline_html(files, out_html))

    # --- headline: final models
    parts.append("<h2>Final models</h2>")
    rules = {v.get("rule_label", "fold with the highest internal-test AUC") for v in final.values()}
    parts.append(f"<p{' class=optimistic' if any(v.get('optimistic') for v in final.values()) else ''}>Final "
                 f"model of each kind: {html.escape('; '.join(sorted(rules)))} ("
                 + ", ".join(f"{LABELS.get(m, m)} " + ("folds " + ", ".join(map(str, v["folds"])) if v["fold"] < 0
                             else f"fold {v['fold']}") for m, v in final.items() if "folds" in v) + ").</p>")
    summary_early = files.json("summary")
    for note in summary_early.get("models_not_available", {}).values():
        parts.append(f"<p class='note'>{html.escape(str(note))}</p>")
    for sentence in summary_early.get("incremental", []):
        parts.append(f"<p>{html.escape(str(sentence))}</p>")
    final_metrics = files.csv("final_metrics")
    table_test = final_metrics[final_metrics["cohort"] == "test"].drop(columns="cohort") if len(final_metrics) \
        else pd.DataFrame()
    for op in ops:
        label = OP_NAMES.get(op, op)
        parts.append(f"<h3>Internal test cohort — {html.escape(label)}</h3>")
        parts.append(_table(_final_table(table_test, op)) if not table_test.empty else "<p>(no data)</p>")
        parts.append(f"<h3>External cohort (paper Table 4) — {html.escape(label)}</h3>")
        parts.append(_table(_final_table(table4, op)))

    # --- evidence (issue 12b): intervals, AUC differences, calibration, clinical utility, subgroups
    parts.append(evidence_html(files, level))

    # --- ROC curves
    parts.append("<h2>ROC curves</h2><div>")
    for cohort in HELD_OUT:
        if not roc.empty and (roc["cohort"] == cohort).any():
            fig = roc_figure(roc, metrics, final, cohort, level)
            parts.append(f"<figure>{_img(to_base64_png(fig), f'ROC {cohort}')}</figure>")
    parts.append("</div>")
    parts.append(f"<p class='note'>Bands: pointwise {level:.0%} stratified bootstrap "
                 f"({int(ev.get('n_bootstrap', 1000))} replicates, patients resampled within class); AUC "
                 "confidence intervals in the tables are DeLong's. Data: results/evaluation/roc.csv.</p>")
    if not metrics.empty:
        parts.append(f"<figure>{_img(to_base64_png(fold_auc_figure(metrics, 'test')), 'AUC per fold')}</figure>")

    # --- DeLong
    parts.append("<h2>DeLong tests (patient level, two-sided)</h2>")
    if not delong.empty:
        d = delong.copy()
        d["model_a"] = d["model_a"].map(lambda m: LABELS.get(m, m))
        d["model_b"] = d["model_b"].map(lambda m: LABELS.get(m, m))
        fmts = {"p": _fmt_p, "z": lambda v: _fmt_num(v, 2), "se": lambda v: _fmt_num(v, 3),
                "diff": lambda v: _fmt_num(v, 3)}  # fmt: skip
        parts.append("<h3>Final models</h3>" + _table(d[d["scope"] == "final"], fmts))
        parts.append("<h3>Per fold</h3>" + _table(d[d["scope"] != "final"], fmts))
    else:
        parts.append("<p>(no data)</p>")

    # --- reproducibility
    for op in ops:
        label = html.escape(OP_NAMES.get(op, op))
        parts.append(f"<h2>Reproducibility over folds — internal test (paper Table 3) — {label}</h2>")
        parts.append(_table(_metric_table(table3, op)) if not table3.empty else "<p>(no data)</p>")
        parts.append(f"<h3>Every fold on the external cohort — {label}</h3>")
        parts.append(_table(_metric_table(table4_folds, op)) if not table4_folds.empty else "<p>(no data)</p>")

    # --- fusion and feature recurrence
    parts.append("<h2>DL-Radiomics classifier comparison (paper Table S1)</h2>")
    summary = summary_early
    ch = summary.get("fusion_choice")
    if ch:
        parts.append(f"<p>Chosen: k = {ch['k']} fused features, classifier "
                     f"<b>{html.escape(str(ch.get('classifier_label', ch['classifier'])))}</b> "
                     f"({html.escape(ch.get('criterion', ''))}).</p>")
    parts.append("<p class='note'>Image-level validation AUC per fold at the chosen k.</p>")
    parts.append(_table(files.csv("table_s1"), digits=3))
    for name, title in (("table_s2", "Radiomics model (paper Table S2)"),
                        ("table_s3", "DL-Radiomics model (paper Table S3)")):  # fmt: skip
        parts.append(f"<h3>Selected features recurring across folds — {title}</h3>")
        parts.append(_table(files.csv(name)))

    # --- cohort
    parts.append("<h2>Cohort</h2>")
    for name, title in (("table1", "Internal cohort (paper Table 1)"), ("table2", "External cohort (paper Table 2)")):
        t = files.csv(name)
        parts.append(f"<h3>{title}</h3><p class='note'>n (%) or mean ± SD (median); LGE+ vs LGE−: Welch t-test "
                     "if Shapiro–Wilk accepts normality in both groups, else Mann–Whitney U; χ² (Pearson) for "
                     "categorical variables. n_* = patients with a value.</p>")  # fmt: skip
        parts.append(_table(t, {"p": _fmt_p, "statistic": lambda v: _fmt_num(v, 2)}))
    if cohort_figure and not Path(cohort_figure).is_file():
        log.warning("cohort figure %s not found: the report goes without it", cohort_figure)
    if cohort_figure and Path(cohort_figure).is_file():
        parts.append(f"<figure>{_img(_file_b64(Path(cohort_figure)), 'cohort figure', 900)}"
                     f"<figcaption>{html.escape(str(cohort_figure))}</figcaption></figure>")

    # --- masks and the segmenter (issue 22)
    from cinescar.evaluation.report_segmentation import segmentation_section

    parts.extend(segmentation_section(files))

    # --- Grad-CAM
    dl_fold = final.get("dl", {}).get("fold")
    cams = gradcam_examples(files.gradcam, int(ev.get("gradcam_examples", 6)), dl_fold)
    parts.append("<h2>Grad-CAM examples (DL model)</h2>")
    if cams:
        parts.append("<p class='optimistic'>Chosen with the internal test cohort's labels: the DL stage draws Grad-CAM "
                     "for the highest-probability images of LGE+ internal-test patients (cinescar.dl.train."
                     "scar_positive_test). They illustrate what the network attends to where it is most confident "
                     "and right; they are not a random sample and no evidence of accuracy.</p>")
        parts.append("<div>" + "".join(
            f"<figure>{_img(_file_b64(p), p.name, 300)}<figcaption>{html.escape(str(p))}</figcaption></figure>"
            for p in cams) + "</div>")  # fmt: skip
    else:
        parts.append("<p class='note'>(no Grad-CAM images found)</p>")

    # --- provenance
    parts.append("<h2>Provenance</h2><h3>Configuration</h3>")
    from cinescar.public import public  # the report is an MLflow artifact: no credentials, no absolute paths

    parts.append(f"<pre>{html.escape(yaml.safe_dump(public(cfg), sort_keys=False, default_flow_style=False))}</pre>")
    parts.append("<h3>Package versions</h3>")
    versions = package_versions()
    parts.append(_table(pd.DataFrame({"package": list(versions), "version": list(versions.values())})))
    parts.append("</body></html>")

    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    Path(versions_out or out.with_name("versions.json")).write_text(json.dumps(versions, indent=1))
    log.info("report written to %s (%.0f kB)", out, out.stat().st_size / 1024)
    return out
