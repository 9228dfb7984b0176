"""The study on real cine (ACDC): import + the workflow with config/acdc.yaml, then per model the pooled
out-of-fold patient AUC over the development patients (DeLong 95 % interval), the fold SD and the wall time.

Usage (from the repository root; ACDC at ../shared/data/acdc/training, see docs/acdc.md):
    python benchmarks/acdc_study.py                                  # run dir /tmp/cinescar-acdc, --cores 2
    python benchmarks/acdc_study.py --directory runs/acdc --cores 2 --config dl='{"seeds": 2}'
    python benchmarks/acdc_study.py --directory runs/acdc --no-run   # only read an existing run's results

The workflow runs to the models' predictions (radiomics, DL, fusion) by default; `--full` runs the whole
study (report and bundle) as `snakemake` without a target does. Out-of-fold = each development patient
scored by the fold in which it was a validation patient (patient probability = max over its images, the
screening rule); the fold SD is the SD over folds of the per-fold validation patient AUC. The internal-test
AUC per fold (the same test patients scored by each fold's model) is printed as a range.

Prints the command, the machine, its load and the wall time; no assertion (figures go into docs/dl.md).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MODELS = {"Radiomics": "results/radiomics/predictions.parquet", "DL": "results/dl/predictions.parquet",
          "DL-Radiomics": "results/fusion/predictions.parquet"}


def run_workflow(directory: Path, cores: int, full: bool, extra_config: list[str]) -> float:
    """Snakemake with config/acdc.yaml in `directory`; returns the wall time (s)."""
    cmd = [str(REPO / ".venv/bin/snakemake"), *([] if full else list(MODELS.values())), "--cores", str(cores),
           "--directory", str(directory), "--configfile", str(REPO / "config/acdc.yaml")]
    if extra_config:
        cmd += ["--config", *extra_config]
    print("workflow:", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - t0


def patients(preds: pd.DataFrame) -> pd.DataFrame:
    from cinescar.screening_rule import PATIENT_AGGREGATE

    return (preds.groupby(["fold", "split", "patient_id"], sort=True)
            .agg(lge=("lge", "max"), prob=("prob", PATIENT_AGGREGATE)).reset_index())


def summarise(directory: Path) -> pd.DataFrame:
    from cinescar.evaluation.delong import delong_ci
    from sklearn.metrics import roc_auc_score

    rows = []
    for model, rel in MODELS.items():
        path = directory / rel
        if not path.exists():
            rows.append({"model": model, "note": f"missing {rel}"})
            continue
        pat = patients(pd.read_parquet(path))
        oof = pat[pat["split"] == "val"]
        auc, lo, hi = delong_ci(oof["lge"].to_numpy(), oof["prob"].to_numpy())
        folds = [roc_auc_score(g["lge"], g["prob"]) for _, g in oof.groupby("fold") if g["lge"].nunique() == 2]
        tests = [roc_auc_score(g["lge"], g["prob"]) for _, g in pat[pat["split"] == "test"].groupby("fold")
                 if g["lge"].nunique() == 2]
        rows.append({"model": model, "patients": len(oof), "lge_pos": int(oof["lge"].sum()),
                     "pooled_oof_auc": auc, "ci_low": lo, "ci_high": hi,
                     "fold_auc_mean": float(np.mean(folds)), "fold_sd": float(np.std(folds, ddof=1)),
                     "fold_aucs": " ".join(f"{a:.2f}" for a in folds),
                     "test_auc_range": f"{min(tests):.2f}-{max(tests):.2f}" if tests else ""})
    return pd.DataFrame(rows)


def stage_times(directory: Path) -> str:
    """Sum of each stage's job wall times from the rules' benchmark files (results/benchmarks/<stage>/)."""
    root = directory / "results/benchmarks"
    out = []
    for stage in sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        total = sum(float(pd.read_csv(f, sep="\t")["s"].iloc[0]) for f in (root / stage).glob("*.tsv"))
        out.append(f"{stage} {total:.0f} s")
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--directory", type=Path, default=Path("/tmp/cinescar-acdc"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="run the whole study (report, bundle)")
    ap.add_argument("--no-run", action="store_true", help="only summarise an existing run directory")
    ap.add_argument("--config", nargs="*", default=[], help="extra snakemake --config KEY=VALUE items")
    args = ap.parse_args()
    wall = math.nan
    if not args.no_run:
        args.directory.mkdir(parents=True, exist_ok=True)
        wall = run_workflow(args.directory.resolve(), args.cores, args.full, args.config)
    table = summarise(args.directory)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"workflow wall time: {wall:.0f} s" if not math.isnan(wall) else "workflow wall time: not run here")
    print("stage job times (sum over jobs):", stage_times(args.directory))
    with pd.option_context("display.width", 220, "display.precision", 3, "display.max_columns", 20):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
