"""Benchmark: CPU and wall seconds of one DL-Radiomics fusion fold (6 k x 5 classifiers), and where they go.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/fusion_speed.py --patients 30 --threads 1
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/fusion_speed.py --patients 30 --profile   # cProfile top 25
    ... --save preds.parquet   # keep the predictions, e.g. to compare two versions of the code exactly

Synthetic fused features shaped like the workflow's: 939 radiomics + 256 DL columns, 20 images per patient of
which 12 development-selected, 36 % LGE+, a quarter as many external patients; default config settings
(LASSO path of 30 penalties, eps 1e-2). CPU seconds are the process's (threads included); wall seconds
depend on the machine's load, which is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time

import numpy as np
import pandas as pd

from cinescar.fusion.model import FusionSettings, fit_fold, fuse_features
from cinescar.cohort.splits import make_splits
from cinescar.radiomics.model import RadiomicsSettings


def synthetic(n_internal: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_internal + n_internal // 4):
        pid, lge = f"P{i:03d}", int(rng.random() < 0.36)
        for s in range(20):
            rows.append({"image_id": f"{pid}_ED_{s:02d}", "patient_id": pid, "lge": lge, "dev_selected": s < 12,
                         "cohort": "internal" if i < n_internal else "external"})
    index = pd.DataFrame(rows)
    label = index["lge"].to_numpy()
    rad = rng.standard_normal((len(index), 939))
    rad[:, :30] += 0.5 * label[:, None] * rng.standard_normal(30)
    dl = rng.standard_normal((len(index), 256))
    dl[:, :20] += 0.8 * label[:, None]
    radiomics = pd.DataFrame(rad, columns=[f"original_f{j:03d}" for j in range(939)])
    radiomics.insert(0, "image_id", index["image_id"])
    dlf = pd.DataFrame(dl, columns=[f"dl_{j:03d}" for j in range(256)])
    dlf.insert(0, "image_id", index["image_id"])
    patients = index.drop_duplicates("patient_id")[["patient_id", "cohort", "lge"]]
    return index, fuse_features(radiomics, dlf), make_splits(patients, test_fraction=0.21, folds=5, seed=42)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=30, help="internal patients (default 30)")
    ap.add_argument("--threads", type=int, default=1, help="fusion.threads")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top 25 by cumulative time")
    ap.add_argument("--save", help="write the fold's predictions_by_config to this Parquet file")
    args = ap.parse_args()
    index, features, splits = synthetic(args.patients)
    settings = FusionSettings(threads=args.threads, lasso=RadiomicsSettings(lasso_alphas=30, lasso_eps=0.01))
    prof = cProfile.Profile() if args.profile else None
    load = os.getloadavg()[0]
    c0, w0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    result = fit_fold(features, index, splits, 0, settings)
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"fold 0: {result.scores['n_train']} training images, {features.shape[1]} features, "
          f"{len(result.models)} configurations, fusion.threads={args.threads}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"CPU {cpu:.1f} s, wall {wall:.1f} s")
    if args.save:
        result.predictions_by_config.to_parquet(args.save, index=False)
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
