"""The report's segmentation section (issue 22): which masks the numbers used, per cohort role, and how good
the study's own segmenter is (Dice, HD95, volume agreement, QC flags), from the `results/segmentation/*.csv` files
the report rule declares."""

from __future__ import annotations

import html
import pandas as pd

from cinescar.evaluation.html_parts import _fmt_num, _table
from cinescar.evaluation.report_inputs import ReportInputs

ROLE_OF_COHORT = {"internal": "internal (development + test)", "external": "external"}


def mask_sources_table(index: pd.DataFrame) -> pd.DataFrame:
    """Images per cohort and mask source (manual / predicted), from the preprocessed index."""
    if "mask_source" not in index:
        return pd.DataFrame()
    role = index["cohort"].astype(str).map(lambda c: "external" if c.startswith("external") else "internal")
    t = index.assign(role=role).groupby(["role", "mask_source"]).agg(
        patients=("patient_id", "nunique"), images=("image_id", "size")).reset_index()
    return t


def deployment_part(files: ReportInputs) -> list[str]:
    """The deployment case: the shipped models on the segmenter's masks instead of the manual ones."""
    comparison = files.csv("deployment")
    icc = files.csv("feature_icc")
    parts = ["<h3>The deployment case: trained on manual masks, used on predicted ones</h3>"
             "<p class='note'>The same patients scored twice by the shipped models: with the manual masks and with "
             "the segmenter's. Development patients: their own fold's model (out of fold), masks from the network "
             "that never saw them; internal-test and external patients: the final model (mean of the fold "
             "models), masks from the ensemble. ΔAUC = predicted − manual with DeLong's paired 95 % interval and "
             "p; decision agreement at the shipped cut-off (development patients: the final model's cut-off "
             "applied to their fold model's probability); |Δp| = per-patient change in the probability.</p>"]
    cols = ["model", "role", "n", "n_lge_pos", "auc_manual", "auc_predicted", "delta_auc", "delta_auc_low",
            "delta_auc_high", "delong_p", "decision_agreement", "decisions_changed", "abs_dp_median", "abs_dp_max"]
    if not comparison.empty:
        comparison = comparison[[c for c in cols if c in comparison]]
    parts.append(_table(comparison, {c: (lambda v: _fmt_num(v, 3)) for c in cols[4:10] + ["decision_agreement",
                                                                                          "abs_dp_median",
                                                                                          "abs_dp_max"]}))
    if not icc.empty:
        overall = icc[icc["role"] == "all"].dropna(subset=["icc_3_1"])
        good = int((overall["icc_3_1"] >= 0.75).sum())
        parts.append(f"<p class='note'>Radiomics features the models select: ICC(3,1) between manual and predicted "
                     f"masks over {int(overall['n_images'].max()) if len(overall) else 0} images: {good} of "
                     f"{len(overall)} features ≥ 0.75 (lowest {_fmt_num(overall['icc_3_1'].min(), 2)}; the ten lowest below). "
                     "Per feature and role: <code>results/segmentation/feature_icc.csv</code>.</p>")
        parts.append(_table(overall.head(10)[["feature", "n_images", "icc_3_1"]],
                            {"icc_3_1": lambda v: _fmt_num(v, 3)}))
    return parts


def segmentation_section(files: ReportInputs) -> list[str]:
    """Which masks the numbers used (from the preprocessed index), then the segmenter's own measures where the
    workflow trained one (`overlap`, `agreement`, `qc`) and the deployment case where it measured it."""
    parts = ["<h2>Masks and the study's segmenter</h2>"]
    index_path = files.path("index.parquet")
    if index_path is not None:
        t = mask_sources_table(pd.read_parquet(index_path))
        parts.append("<p class='note'>Which myocardium masks the scar models were trained and scored on "
                     "(<code>segmentation.masks</code>): manual = the manifest's contours; predicted = the "
                     "segmenter's (development patients out of fold, held-out patients by the ensemble).</p>")
        parts.append(_table(t) if not t.empty else "<p class='note'>(no mask sources recorded)</p>")
    if files.path("overlap.csv") is None:
        parts.append("<p class='note'>No segmenter was trained (segmentation.enabled: false).</p>")
        return parts
    overlap = files.csv("overlap")
    main = overlap[overlap["center"].isna() & overlap["vendor"].isna()] if "center" in overlap else overlap
    parts.append("<h3>Overlap with the manual masks</h3><p class='note'>Per stack (one phase of one patient), on "
                 "the 1 × 1 mm field: Dice and 95 % Hausdorff distance (mm). Development patients were segmented "
                 "by the network that did not train on them; test and external patients by the mean of all "
                 "networks, none of which saw them. Per centre and vendor: "
                 "<code>results/segmentation/overlap.csv</code>.</p>")
    if main.empty:  # a cohort without contours: every study mask is the segmenter's
        parts.append("<p class='note'>Not measurable: no study patient has a manual mask (the segmenter learnt "
                     "from <code>segmentation.extra_cohorts</code>).</p>")
    else:
        parts.append(_table(main.drop(columns=[c for c in ("center", "vendor") if c in main]),
                            {c: (lambda v: _fmt_num(v, 3)) for c in ("dice_mean", "dice_median", "dice_min")}))
    agree = files.csv("agreement")
    parts.append("<h3>Agreement of derived measures (predicted − manual)</h3><p class='note'>Bland–Altman bias and "
                 "95 % limits of agreement at end-diastole (LVEF from both phases).</p>")
    parts.append(_table(agree, {c: (lambda v: _fmt_num(v, 2)) for c in ("bias", "loa_low", "loa_high",
                                                                         "median_abs_diff")}))
    qc = files.csv("qc")
    parts.append("<h3>Quality-control flags</h3><p class='note'>Exams whose predicted masks no heart looks like; "
                 "<code>cinescar screen</code> gives such an exam no decision. A row without a flag counts exams "
                 "with any flag.</p>")
    parts.append(_table(qc))
    if files.declared("deployment.csv"):
        parts.extend(deployment_part(files))
    return [p if isinstance(p, str) else html.escape(str(p)) for p in parts]
