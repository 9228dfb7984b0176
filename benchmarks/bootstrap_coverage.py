"""Benchmark: coverage of the stratified bootstrap intervals on simulated cohorts, and what the evidence costs.

    .venv/bin/python benchmarks/bootstrap_coverage.py                 # coverage at 5/15/40 LGE+ + cost
    .venv/bin/python benchmarks/bootstrap_coverage.py --sims 200      # quicker

Coverage: cohorts of n LGE+ and 2n LGE− patients, scores N(1, 1) for LGE+ and N(0, 1) for LGE− (true AUC
0.76), a fixed cut-off 0 (true sensitivity 0.84, specificity 0.50), and a second model of the same quality
(true AUC difference 0). The share of cohorts whose 95 % interval holds the truth should be near 0.95; with
few patients a percentile bootstrap of a proportion is known to under-cover, and this prints by how much,
beside Wilson's score interval for the same proportions.

Cost: `evidence_tables` on a study of the default run's size (9 models × 5 folds + the final model; 62
development, 13 internal-test, 20 external patients), CPU seconds, at 1000 and 5000 replicates.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cinescar.evaluation.bootstrap import (auc_difference_interval, screening_intervals,  # noqa: E402
                                           stratified_resamples)
from cinescar.evaluation.evidence import evidence_tables  # noqa: E402
from cinescar.evaluation.metrics import confusion_counts, screening_metrics, wilson_intervals  # noqa: E402


def coverage(n_pos: int, sims: int, n_boot: int, level: float = 0.95) -> dict[str, float]:
    rng = np.random.default_rng(n_pos)
    truth = {"sensitivity": stats.norm.sf(-1.0), "specificity": stats.norm.cdf(0.0)}
    hits = {"sensitivity": 0, "specificity": 0, "auc_diff": 0, "wilson_sensitivity": 0, "wilson_specificity": 0}
    widths = {k: [] for k in hits}
    for s in range(sims):
        y = np.r_[np.ones(n_pos, int), np.zeros(2 * n_pos, int)]
        a, b = rng.normal(y * 1.0, 1.0), rng.normal(y * 1.0, 1.0)
        idx = stratified_resamples(y, n_boot, seed=s)
        iv = screening_intervals(y, a, 0.0, idx, level)
        for k, t in truth.items():
            hits[k] += iv[f"{k}_low"] <= t <= iv[f"{k}_high"]
            widths[k].append(iv[f"{k}_high"] - iv[f"{k}_low"])
        w = wilson_intervals(confusion_counts(y, a, 0.0), level)
        for k, t in truth.items():
            hits[f"wilson_{k}"] += w[f"{k}_low"] <= t <= w[f"{k}_high"]
            widths[f"wilson_{k}"].append(w[f"{k}_high"] - w[f"{k}_low"])
        lo, hi = auc_difference_interval(y, a, b, idx, level)
        hits["auc_diff"] += lo <= 0.0 <= hi
        widths["auc_diff"].append(hi - lo)
    return {**{f"coverage_{k}": v / sims for k, v in hits.items()},
            **{f"median_width_{k}": float(np.median(w)) for k, w in widths.items()}}


def study_like(seed: int = 0) -> tuple[dict, pd.DataFrame, dict]:
    """Patients and metrics shaped like the default run: 9 models, 5 folds + the mean final model (fold -1)."""
    rng = np.random.default_rng(seed)
    dev = [f"D{i:03d}" for i in range(62)]
    test = [f"T{i:03d}" for i in range(13)]
    ext = [f"X{i:03d}" for i in range(20)]
    lab = {p: int(i % 5 in (1, 3)) for i, p in enumerate(dev + test + ext)}
    models = ["radiomics", "dl", "fusion", "clinical", "radiomics_clinical", "dl_clinical", "fusion_clinical",
              "shape_control", "slice_control"]
    patients, rows = {}, []
    for k, model in enumerate(models):
        recs = []
        for f in range(5):
            for split, group in (("val", dev[f::5]), ("test", test), ("external", ext)):
                for p in group:
                    recs.append({"fold": f, "split": split, "patient_id": p, "lge": lab[p], "n_images": 6,
                                 "prob": float(1 / (1 + np.exp(-rng.normal(0.8 * lab[p] - 0.4, 1.0))))})
        df = pd.DataFrame(recs)
        mean = df[df["split"] != "val"].groupby(["split", "patient_id"], as_index=False).agg(
            lge=("lge", "first"), prob=("prob", "mean"), n_images=("n_images", "first")).assign(fold=-1)
        patients[model] = pd.concat([df, mean], ignore_index=True)
        val = df[df["split"] == "val"]
        pos = np.sort(val.loc[val["lge"] == 1, "prob"].to_numpy())[::-1]
        cut = float(pos[int(np.ceil(0.9 * pos.size)) - 1])
        for (f, split), g in patients[model].groupby(["fold", "split"]):
            for op in ("pooled", "validation") if f >= 0 else ("pooled",):
                rows.append({"model": model, "fold": f, "cohort": split, "operating_point": op, "cutoff": cut,
                             **screening_metrics(g["lge"].to_numpy(), g["prob"].to_numpy(), cut)})
    final = {m: {"fold": -1, "rule": "mean"} for m in models}
    return patients, pd.DataFrame(rows), final


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=500)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    print(f"command: .venv/bin/python benchmarks/bootstrap_coverage.py --sims {args.sims} --n-boot {args.n_boot}")
    print("\ncoverage of 95 % intervals (percentile stratified bootstrap; wilson_*: Wilson score), n LGE+, 2n LGE−")
    for n_pos in (5, 15, 40):
        t = time.process_time()
        c = coverage(n_pos, args.sims, args.n_boot)
        print(f"  n_pos={n_pos:3d}: " + ", ".join(f"{k} {v:.3f}" for k, v in c.items())
              + f"  ({time.process_time() - t:.1f} CPU-s)")
    patients, metrics, final = study_like()
    print(f"\ncost of evidence_tables on a default-run-sized study ({len(metrics)} metrics rows):")
    for n_boot in (1000, 5000):
        cfg = {"seed": 0, "mlflow": {"enabled": False}, "evaluation": {"n_bootstrap": n_boot}}
        with tempfile.TemporaryDirectory() as d:
            cwd = Path.cwd()
            os.chdir(d)  # MLflow's offline record lands in the temporary folder
            try:
                t0, w0 = time.process_time(), time.perf_counter()
                files = evidence_tables(patients, metrics, final, None, None, cfg, Path(d) / "ev")
                cpu, wall = time.process_time() - t0, time.perf_counter() - w0
            finally:
                os.chdir(cwd)
            ev = pd.read_json(files["evidence"], typ="series")["bootstrap"]
        print(f"  n_bootstrap={n_boot}: {cpu:.2f} CPU-s ({wall:.2f} s wall) in all; metric intervals alone "
              f"{ev['cpu_seconds_metric_intervals']:.2f} CPU-s over {ev['patient_sets']} patient sets")


if __name__ == "__main__":
    main()
