"""Per-stage cost of a finished workflow run, and its projection to the paper's scale.

Reads the Snakemake `benchmark:` files a run wrote (`<run>/results/benchmarks/<stage>/*.tsv`) and the run's image
index, prints wall and CPU seconds per stage, the cost per image (or per fold) and what that cost implies
for the paper's cohort (759 internal + 100 external patients, ~16,500 images as this pipeline extracts them
(every slice), of which ~3,790 development in the paper's count).

    .venv/bin/python benchmarks/workflow_scale.py --run-dir .            # after `make run`
    .venv/bin/python benchmarks/workflow_scale.py --run-dir runs/acdc
    .venv/bin/python benchmarks/workflow_scale.py --run-dir RUN_1CORE --run-dir RUN_2CORES   # core scaling

With two run directories of the same config (e.g. written by benchmarks/core_scaling.py, which also records
each run's total wall time in `run_timing.json`), it prints both per-stage tables, the 1 -> 2 ratio of the
runs' wall times and, per stage, the span from its first job's start to its last job's end (a job's end is
its benchmark file's modification time, its start that minus its wall time).

The projection scales each stage by what drives its cost (images extracted, development images trained
on, patients generated) and assumes the same per-image costs: it is an estimate from measured costs, not
a measurement, and it ignores that the paper's CNN is ~60x larger than the CPU default (see docs/dl.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import pandas as pd

# images: what this pipeline extracts at the paper's size (every slice with myocardium; measured in the first
# paper-size run, /work/shared/notes/paper-scale-run.md) -- the paper itself counts ~4,850 selected slices
PAPER = {"images": 16485, "dev_images": 3790, "patients": 859}


def stage_costs(run_dir: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((run_dir / "results" / "benchmarks").glob("*/*.tsv")):
        b = pd.read_csv(tsv, sep="\t").iloc[-1]
        end = tsv.stat().st_mtime
        rows.append({"stage": tsv.parent.name, "job": tsv.stem, "wall_s": float(b["s"]),
                     "cpu_s": float(b["cpu_time"]), "max_rss_mb": float(b["max_rss"]),
                     "start": end - float(b["s"]), "end": end})
    if not rows:
        raise SystemExit(f"no benchmark files under {run_dir}/results/benchmarks: run the workflow there first")
    return pd.DataFrame(rows)


def group(job: str, stage: str) -> str:
    if stage == "radiomics":
        if job == "gather":
            return "radiomics gather"
        return "radiomics extraction" if job.startswith("extract") else "radiomics model (per fold)"
    if stage == "dl":
        return "dl tuning" if job == "tune" else "dl training (per fold)"
    return {"cohort": "cohort (synthetic/import)", "preprocess": "preprocessing", "fusion": "fusion (per fold)",
            "evaluation": "evaluation", "bundle": "bundle"}.get(stage, stage)


def run_wall(run: Path, costs: pd.DataFrame) -> tuple[float, str]:
    """The run's wall time: measured by benchmarks/core_scaling.py if it ran it, else the benchmark files' span
    (first benchmarked job's start to last one's end: misses rules without a `benchmark:`, e.g. the report)."""
    timing = run / "run_timing.json"
    if timing.is_file():
        return float(json.loads(timing.read_text())["wall_s"]), "measured around snakemake"
    return float(costs["end"].max() - costs["start"].min()), "span of the benchmark files"


def stage_table(run: Path) -> tuple[pd.DataFrame, dict]:
    """Per-stage jobs, summed job wall, CPU, span, cost per image and the paper-scale projection of one run."""
    costs = stage_costs(run)
    costs["group"] = [group(j, s) for j, s in zip(costs["job"], costs["stage"])]
    index = pd.read_parquet(run / "results/preprocess/index.parquet")
    n_images, n_dev, n_patients = len(index), int(index["dev_selected"].sum()), index["patient_id"].nunique()
    drivers = {"cohort (synthetic/import)": PAPER["patients"] / n_patients,
               "preprocessing": PAPER["images"] / n_images, "radiomics extraction": PAPER["images"] / n_images,
               "radiomics gather": PAPER["images"] / n_images,
               "radiomics model (per fold)": PAPER["dev_images"] / n_dev, "dl tuning": PAPER["dev_images"] / n_dev,
               "dl training (per fold)": PAPER["images"] / n_images,  # training + inference on every image
               "fusion (per fold)": PAPER["dev_images"] / n_dev, "evaluation": PAPER["patients"] / n_patients,
               "bundle": 1.0}
    table = costs.groupby("group", sort=False).agg(jobs=("job", "count"), wall_s=("wall_s", "sum"),
                                                   cpu_s=("cpu_s", "sum"), start=("start", "min"),
                                                   end=("end", "max"), max_rss_mb=("max_rss_mb", "max"))
    t0 = costs["start"].min()
    table["span_s"] = table["end"] - table["start"]
    table["from_s"] = table["start"] - t0
    table = table.drop(columns=["start", "end"])
    table["per_image_ms"] = 1000 * table["cpu_s"] / n_images
    table["paper_scale_cpu_min"] = [row.cpu_s * drivers.get(g, 1.0) / 60 for g, row in table.iterrows()]
    wall, how = run_wall(run, costs)
    info = {"run": run.resolve(), "patients": n_patients, "images": n_images, "dev": n_dev, "wall_s": wall,
            "wall_how": how, "cpu_s": float(table["cpu_s"].sum())}
    return table, info


def print_run(table: pd.DataFrame, info: dict) -> None:
    print(f"run: {info['run']} -- {info['patients']} patients, {info['images']} images ({info['dev']} for "
          "development)")
    print(table.round(2).to_string())
    total = table[["wall_s", "cpu_s", "paper_scale_cpu_min"]].sum()
    print(f"total: run wall {info['wall_s']:.0f} s ({info['wall_how']}); job wall {total.wall_s:.0f} s (sum over "
          f"jobs), CPU {total.cpu_s:.0f} s of benchmarked jobs = {total.cpu_s / info['wall_s']:.2f} CPUs busy on "
          f"average; paper scale ~{total.paper_scale_cpu_min:.0f} CPU-minutes at the same model sizes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", action="append", help="working directory of a finished run; give two "
                        "(1 core, then 2 cores) for the core-scaling ratio")
    args = parser.parse_args()
    runs = [Path(r) for r in (args.run_dir or ["."])]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"load average now {os.getloadavg()[0]:.1f}")
    results = [stage_table(run) for run in runs]
    for table, info in results:
        print_run(table, info)
    if len(results) == 2:
        (t1, i1), (t2, i2) = results
        print(f"\ncore scaling: run wall {i1['wall_s']:.0f} s -> {i2['wall_s']:.0f} s = "
              f"{i1['wall_s'] / i2['wall_s']:.2f}x (goal >= 1.7x)")
        both = pd.DataFrame({"span_1_s": t1["span_s"], "span_2_s": t2["span_s"], "cpu_1_s": t1["cpu_s"],
                             "cpu_2_s": t2["cpu_s"]})
        both["span_ratio"] = both["span_1_s"] / both["span_2_s"]
        print(both.round(2).to_string())


if __name__ == "__main__":
    main()
