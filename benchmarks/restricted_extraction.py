"""Benchmark: would restricted extraction pay in the workflow? (issue 14, docs/performance.md section 1)

    .venv/bin/python benchmarks/restricted_extraction.py --run-dir . --images 30

Only fold-training images (development patients' selected images: each is a training image in 4 of 5 folds)
need every feature. Every other image (validation-only slices, internal test, external) is only predicted,
so it needs only the union of the features that *any* fold's LASSO selected for *any* candidate k, of the
Radiomics model (`results/radiomics/fold*/selected.csv`) and of the fused model
(`results/fusion/fold*/scores.json`): k is chosen after all folds, so every candidate's features are read.
This script reads that union from a finished run, extracts the same images with the full and with the
restricted extractor (`cinescar.radiomics.restricted`), checks the shared features are identical, and prints
CPU seconds per image for both and the share of the run's images that would need only the restricted set,
so the saving is measured, not guessed. One process, CPU time (`time.process_time`), median of repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cinescar.fusion.model import DL_COLUMN  # noqa: E402
from cinescar.cohort.splits import fold_images  # noqa: E402
from cinescar.preprocessing.store import load_arrays, load_index  # noqa: E402
from cinescar.radiomics.extract import extract_image, make_extractor  # noqa: E402
from cinescar.radiomics.restricted import restricted_extractor  # noqa: E402
from radiomics_extraction import per_image_seconds  # noqa: E402  (the sibling benchmark's timing loop)


def selected_union(results: Path) -> list[str]:
    """Every radiomic feature any fold selected for any candidate k, in either model."""
    names: list[str] = []
    for path in sorted(results.glob("radiomics/fold*/selected.csv")):
        names += pd.read_csv(path)["feature"].astype(str).tolist()
    for path in sorted(results.glob("fusion/fold*/scores.json")):
        for rows in json.loads(path.read_text())["selected"].values():
            names += [r["feature"] for r in rows if not DL_COLUMN.match(r["feature"])]
    return list(dict.fromkeys(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default=".", help="a finished run (holds results/)")
    ap.add_argument("--params", default=None,
                    help="pyradiomics parameter file (default: this checkout's config/radiomics.yaml)")
    ap.add_argument("--images", type=int, default=30, help="images timed (spread over the run's image index)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import radiomics

    run = Path(args.run_dir)
    results = run / "results"
    params = Path(args.params) if args.params else (REPO / "config" / "radiomics.yaml")
    union = selected_union(results)
    if not union:
        sys.exit(f"no fold selections under {results}/radiomics or {results}/fusion: run the workflow first")

    index = load_index(results / "preprocess" / "index.parquet")
    splits = json.loads((results / "splits" / "splits.json").read_text())
    train_ids = set()
    for f in splits["folds"]:
        train_ids |= set(fold_images(index, splits, int(f["fold"]))["train"]["image_id"])
    n_full = len(train_ids)
    pick = np.linspace(0, len(index) - 1, min(args.images, len(index))).round().astype(int)
    sample = index.iloc[np.unique(pick)]
    images, masks = load_arrays(sample, results / "preprocess")

    full_ext = make_extractor(params)
    restricted = restricted_extractor(params, union)
    extract_image(full_ext, images[0], masks[0])  # warm-up: imports and first-call costs
    extract_image(restricted, images[0], masks[0])
    t_full = per_image_seconds(full_ext, images, masks, args.repeats)
    t_res = per_image_seconds(restricted, images, masks, args.repeats)
    v_full = [extract_image(full_ext, i, m) for i, m in zip(images, masks)]
    v_res = [extract_image(restricted, i, m) for i, m in zip(images, masks)]
    n_all = len(v_full[0])
    missing = [n for n in union if n not in v_res[0]]
    mismatch = sum(not np.array_equal(np.float64(a[n]), np.float64(b[n]), equal_nan=True)
                   for a, b in zip(v_full, v_res) for n in union if n in b)
    types = sorted({n.split("_", 1)[0] for n in union})

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, pyradiomics {radiomics.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"run: {len(index)} images, {len(splits['folds'])} folds; union of every fold's selections over every "
          f"candidate k (Radiomics + fused): {len(union)} of {n_all} features, {len(types)} image-type prefixes "
          f"({', '.join(types)})")
    print(f"restricted extractor computed {len(v_res[0])} features; union features it lacks: {len(missing)}; "
          f"values differing from the full extraction: {mismatch} of {len(union) * len(v_res)}")
    print(f"CPU s/image over {len(images)} images (median of {args.repeats}): full {t_full:.3f}, restricted "
          f"{t_res:.3f} = {t_res / t_full:.2f}x")
    share = 1 - n_full / len(index)
    saving = share * (1 - t_res / t_full)
    print(f"images needing every feature (fold-training): {n_full} of {len(index)}; only predicted: "
          f"{len(index) - n_full} ({100 * share:.0f} %)")
    print(f"=> restricted extraction of the predicted-only images would save {100 * saving:.0f} % of the "
          f"extraction CPU (before the cost of a second extraction phase and its DAG barrier)")


if __name__ == "__main__":
    main()
