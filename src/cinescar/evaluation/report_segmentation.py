"""The report's segmentation section (issue 22): which masks the numbers used, per cohort role, and how good
the study's own segmenter is (Dice, HD95, volume agreement, QC flags), from `results/segmentation/*.csv`."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from cinescar.evaluation.html_parts import _fmt_num, _read_csv, _table

ROLE_OF_COHORT = {"internal": "internal (development + test)", "external": "external"}


def mask_sources_table(index: pd.DataFrame) -> pd.DataFrame:
    """Images per cohort and mask source (manual / predicted), from the preprocessed index."""
    if "mask_source" not in index:
        return pd.DataFrame()
    role = index["cohort"].astype(str).map(lambda c: "external" if c.startswith("external") else "internal")
    t = index.assign(role=role).groupby(["role", "mask_source"]).agg(
        patients=("patient_id", "nunique"), images=("image_id", "size")).reset_index()
    return t


def segmentation_section(index_path: str | Path | None, seg_dir: str | Path | None) -> list[str]:
    parts = ["<h2>Masks and the study's segmenter</h2>"]
    if index_path and Path(index_path).is_file():
        t = mask_sources_table(pd.read_parquet(index_path))
        parts.append("<p class='note'>Which myocardium masks the scar models were trained and scored on "
                     "(<code>segmentation.masks</code>): manual = the manifest's contours; predicted = the "
                     "segmenter's (development patients out of fold, held-out patients by the ensemble).</p>")
        parts.append(_table(t) if not t.empty else "<p class='note'>(no mask sources recorded)</p>")
    if not seg_dir or not (Path(seg_dir) / "overlap.csv").is_file():
        parts.append("<p class='note'>No segmenter was trained (segmentation.enabled: false).</p>")
        return parts
    seg_dir = Path(seg_dir)
    overlap = _read_csv(seg_dir / "overlap.csv")
    main = overlap[overlap["center"].isna() & overlap["vendor"].isna()] if "center" in overlap else overlap
    parts.append("<h3>Overlap with the manual masks</h3><p class='note'>Per stack (one phase of one patient), on "
                 "the 1 × 1 mm field: Dice and 95 % Hausdorff distance (mm). Development patients were segmented "
                 "by the network that did not train on them; test and external patients by the mean of all "
                 "networks, none of which saw them. Per centre and vendor: "
                 "<code>results/segmentation/overlap.csv</code>.</p>")
    parts.append(_table(main.drop(columns=[c for c in ("center", "vendor") if c in main]),
                        {c: (lambda v: _fmt_num(v, 3)) for c in ("dice_mean", "dice_median", "dice_min")}))
    agree = _read_csv(seg_dir / "agreement.csv")
    parts.append("<h3>Agreement of derived measures (predicted − manual)</h3><p class='note'>Bland–Altman bias and "
                 "95 % limits of agreement at end-diastole (LVEF from both phases).</p>")
    parts.append(_table(agree, {c: (lambda v: _fmt_num(v, 2)) for c in ("bias", "loa_low", "loa_high",
                                                                         "median_abs_diff")}))
    qc = _read_csv(seg_dir / "qc.csv")
    parts.append("<h3>Quality-control flags</h3><p class='note'>Exams whose predicted masks no heart looks like; "
                 "<code>cinescar screen</code> gives such an exam no decision. A row without a flag counts exams "
                 "with any flag.</p>")
    parts.append(_table(qc))
    return [p if isinstance(p, str) else html.escape(str(p)) for p in parts]
