"""Out of distribution: how far a screened exam lies from the images that trained the bundle's models.

One home for both halves of the check (issue 26): the training ranges the bundle records when it is built
(`training_ranges`, from the preprocessing index's fingerprint columns) and the warnings a screened exam gets
(`exam_statistics` from its own fingerprint, `distribution_warnings` against the ranges). No raw image is
opened again: preprocessing measured every number here once (`cinescar.preprocessing.fingerprint`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cinescar.errors import CinescarError


def training_ranges(index_path: str | Path, splits_path: str | Path, folds: list[int]) -> dict[str, Any]:
    """Acquisition ranges of the images that trained the final models (union of the chosen folds' train).

    Pixel spacing, matrix size and raw intensity percentiles are the preprocessing index's fingerprint
    columns (measured once while preprocessing): no raw image is opened again here.
    """
    from cinescar.preprocessing.fingerprint import FINGERPRINT_COLUMNS
    from cinescar.cohort.splits import load_splits

    splits = load_splits(splits_path)
    train: set[str] = set()
    for f in splits["folds"]:
        if int(f["fold"]) in folds:
            train |= {str(p) for p in f["train"]}
    index = pd.read_parquet(index_path)
    missing = [c for c in FINGERPRINT_COLUMNS if c not in index.columns]
    if missing:
        raise CinescarError(f"{index_path} lacks the fingerprint column(s) {missing}: it was written by an older "
                            "cinescar; rerun preprocessing (snakemake --forcerun preprocess_center)")
    rows = index[index["patient_id"].astype(str).isin(train)]
    if rows.empty:
        raise CinescarError(f"no image of the training patients of folds {folds} in {index_path}")
    spacing = pd.concat([rows["spacing_x"], rows["spacing_y"]]).astype(float)
    stacks = rows.drop_duplicates(["patient_id", "phase"])  # the percentiles are per phase stack
    return {
        "source": f"training patients of folds {sorted(folds)}",
        "n_patients": len(train),
        "n_images": int(len(rows)),
        "spacing_mm": [float(spacing.min()), float(spacing.max())],
        "rows": [int(rows["orig_rows"].min()), int(rows["orig_rows"].max())],
        "cols": [int(rows["orig_cols"].min()), int(rows["orig_cols"].max())],
        "intensity_p01": [float(np.nanmin(stacks["intensity_p01"])), float(np.nanmax(stacks["intensity_p01"]))],
        "intensity_p99": [float(np.nanmin(stacks["intensity_p99"])), float(np.nanmax(stacks["intensity_p99"]))],
    }



def distribution_warnings(exam_stats: dict[str, dict[str, float]], ranges: dict[str, Any],
                          tolerance: float) -> list[str]:  # fmt: skip
    """One warning per statistic of a phase that lies outside the training range widened by `tolerance`.

    The margin is `tolerance` times the largest magnitude of the range's ends, so a training set with one
    pixel spacing (1.25 mm) still accepts 1.2-1.3 mm at 10 % but not 2 mm. For the two intensity percentiles
    the magnitude is that of the training intensities as a whole (the largest 99th percentile): a 1st
    percentile near zero (background) would otherwise get a margin of a few grey levels.
    """
    intensity_scale = max((abs(float(v)) for k in ("intensity_p01", "intensity_p99") for v in ranges.get(k, [])),
                          default=0.0)
    labels = {"spacing_mm": ("pixel spacing", "mm"), "rows": ("matrix rows", ""), "cols": ("matrix columns", ""),
              "intensity_p01": ("raw intensity (1st percentile)", ""),
              "intensity_p99": ("raw intensity (99th percentile)", "")}  # fmt: skip
    out = []
    for phase, stats in exam_stats.items():
        for key, value in stats.items():
            if key not in ranges or value is None or not np.isfinite(value):
                continue
            lo, hi = (float(v) for v in ranges[key])
            scale = intensity_scale if key.startswith("intensity") else max(abs(lo), abs(hi))
            margin = tolerance * scale
            if lo - margin <= value <= hi + margin:
                continue
            name, unit = labels[key]
            out.append(f"out of distribution: {phase} {name} {value:.4g}{unit and ' ' + unit} is outside the "
                       f"training range {lo:.4g}-{hi:.4g}{unit and ' ' + unit} (tolerance {tolerance:.0%}); the "
                       "models were not trained on such images and the probabilities below are extrapolations")
    return out


def exam_statistics(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per phase: pixel spacing (both axes), matrix size and raw intensity percentiles of the exam.

    Read from the fingerprint columns of the exam's index rows (`preprocess_exam`), one stack per phase.
    """
    stats: dict[str, dict[str, float]] = {}
    for phase, r in rows.drop_duplicates("phase").set_index("phase").iterrows():
        stats[f"{phase} x"] = {"spacing_mm": float(r["spacing_x"])}
        stats[f"{phase} y"] = {"spacing_mm": float(r["spacing_y"])}
        stats[phase] = {"rows": float(r["orig_rows"]), "cols": float(r["orig_cols"]),
                        "intensity_p01": float(r["intensity_p01"]), "intensity_p99": float(r["intensity_p99"])}
    return stats
