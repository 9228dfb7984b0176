"""Per-stage cost of a finished workflow run, and its projection to the paper's scale.

Reads the Snakemake `benchmark:` files a run wrote (`<run>/results/benchmarks/<stage>/*.tsv`) and the run's image
index, prints wall and CPU seconds per stage, the cost per image (or per fold) and what that cost implies
for the paper's cohort (759 internal + 100 external patients, ~4,850 images, of which ~3,790 development).

    .venv/bin/python benchmarks/workflow_scale.py --run-dir .            # after `make run`
    .venv/bin/python benchmarks/workflow_scale.py --run-dir runs/acdc

The projection scales each stage by what drives its cost (images extracted, development images trained
on, patients generated) and assumes the same per-image costs: it is an estimate from measured costs, not
a measurement, and it ignores that the paper's CNN is ~60x larger than the CPU default (see docs/dl.md).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import pandas as pd

PAPER = {"images": 4853, "dev_images": 3790, "patients": 859}


def stage_costs(run_dir: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((run_dir / "results" / "benchmarks").glob("*/*.tsv")):
        b = pd.read_csv(tsv, sep="\t").iloc[-1]
        rows.append({"stage": tsv.parent.name, "job": tsv.stem, "wall_s": float(b["s"]),
                     "cpu_s": float(b["cpu_time"]), "max_rss_mb": float(b["max_rss"])})
    if not rows:
        raise SystemExit(f"no benchmark files under {run_dir}/results/benchmarks: run the workflow there first")
    return pd.DataFrame(rows)


def group(job: str, stage: str) -> str:
    if stage == "radiomics":
        return "radiomics extraction" if job.startswith("extract") else "radiomics model (per fold)"
    if stage == "dl":
        return "dl tuning" if job == "tune" else "dl training (per fold)"
    return {"cohort": "cohort (synthetic/import)", "preprocess": "preprocessing", "fusion": "fusion (per fold)",
            "evaluation": "evaluation", "bundle": "bundle"}.get(stage, stage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=".", help="working directory of a finished run")
    args = parser.parse_args()
    run = Path(args.run_dir)
    costs = stage_costs(run)
    costs["group"] = [group(j, s) for j, s in zip(costs["job"], costs["stage"])]
    index = pd.read_parquet(run / "results/preprocess/index.parquet")
    n_images, n_dev, n_patients = len(index), int(index["dev_selected"].sum()), index["patient_id"].nunique()
    drivers = {"cohort (synthetic/import)": PAPER["patients"] / n_patients,
               "preprocessing": PAPER["images"] / n_images, "radiomics extraction": PAPER["images"] / n_images,
               "radiomics model (per fold)": PAPER["dev_images"] / n_dev, "dl tuning": PAPER["dev_images"] / n_dev,
               "dl training (per fold)": PAPER["images"] / n_images,  # training + inference on every image
               "fusion (per fold)": PAPER["dev_images"] / n_dev, "evaluation": PAPER["patients"] / n_patients,
               "bundle": 1.0}
    table = costs.groupby("group", sort=False).agg(jobs=("job", "count"), wall_s=("wall_s", "sum"),
                                                   cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    table["per_image_ms"] = 1000 * table["cpu_s"] / n_images
    table["paper_scale_cpu_min"] = [row.cpu_s * drivers.get(g, 1.0) / 60 for g, row in table.iterrows()]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"run: {run.resolve()} -- {n_patients} patients, {n_images} images ({n_dev} for development)")
    print(table.round(2).to_string())
    total = table[["wall_s", "cpu_s", "paper_scale_cpu_min"]].sum()
    print(f"total: job wall {total.wall_s:.0f} s (sum over jobs), CPU {total.cpu_s:.0f} s; paper scale "
          f"~{total.paper_scale_cpu_min:.0f} CPU-minutes at the same model sizes")


if __name__ == "__main__":
    main()
