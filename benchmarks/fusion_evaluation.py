"""Benchmark: one fusion fold at paper scale (time per classifier, model.joblib size) and the evaluation's
statistics (DeLong, bootstrap ROC bands).

    .venv/bin/python benchmarks/fusion_evaluation.py              # paper scale: 3000 train images, 939 + 256 features
    .venv/bin/python benchmarks/fusion_evaluation.py --scale 0.3  # smaller

Synthetic features (no images are read); the numbers depend only on the table sizes. Paper scale per fold:
~3000 training and ~760 validation images (3790 development images, 80/20), ~1000 internal-test and ~700
external images, 939 radiomics (our 2D extraction) + 256 DL features, k = 5..50, five classifiers.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cinescar.evaluation.delong import delong_test  # noqa: E402
from cinescar.evaluation.metrics import roc_with_band  # noqa: E402
from cinescar.fusion import model as fm  # noqa: E402
from cinescar.radiomics.model import RadiomicsSettings  # noqa: E402


def synthetic(scale: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_dev, n_test, n_ext = int(600 * scale), int(160 * scale), int(100 * scale)
    rows, rad, dl = [], [], []
    for i in range(n_dev + n_test + n_ext):
        pid, lge = f"P{i:04d}", int(rng.random() < 0.35)
        n_img = 6 if not lge else 4
        for s in range(n_img + 2):
            rows.append({"image_id": f"{pid}_ED_{s:02d}", "patient_id": pid, "lge": lge, "dev_selected": s < n_img,
                         "cohort": "external" if i >= n_dev + n_test else "internal"})
    index = pd.DataFrame(rows)
    n = len(index)
    y = index["lge"].to_numpy()
    rad = rng.standard_normal((n, 939)) * rng.uniform(0.1, 100, 939)
    rad[:, :20] += 0.6 * y[:, None]
    dl = rng.standard_normal((n, 256))
    dl[:, :20] += 0.5 * y[:, None]
    radf = pd.DataFrame(rad, columns=[f"r{j:04d}" for j in range(939)]).assign(image_id=index["image_id"])
    dlf = pd.DataFrame(dl, columns=[f"dl_{j:03d}" for j in range(256)]).assign(image_id=index["image_id"])
    pids = index.drop_duplicates("patient_id")["patient_id"].tolist()
    dev, test, ext = pids[:n_dev], pids[n_dev:n_dev + n_test], pids[n_dev + n_test:]
    val = dev[::5]
    splits = {"test": test, "external": ext,
              "folds": [{"fold": 0, "train": sorted(set(dev) - set(val)), "val": val}]}
    return index, radf, dlf, splits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or 'cpu'}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    index, rad, dl, splits = synthetic(args.scale)
    from cinescar.cohort.splits import fold_images

    roles = fold_images(index, splits, 0)
    print("images:", {k: len(v) for k, v in roles.items()})
    features = fm.fuse_features(rad, dl)
    settings = fm.FusionSettings(threads=args.threads, lasso=RadiomicsSettings(seed=0))
    # time each classifier alone (LASSO included once in the first)
    t0 = time.perf_counter()
    fm.fit_fold(features, index, splits, 0, fm.FusionSettings(k_candidates=(5,), classifiers=("logistic_l1",),
                                                              k_classifier="logistic_l1", lasso=settings.lasso))
    t_lasso = time.perf_counter() - t0
    print(f"imputer + scaler + LASSO (grouped 5-fold LassoCV) + 1 LR fit: {t_lasso:.1f} s")
    for name in fm.CLASSIFIERS:
        X = np.random.default_rng(0).random((len(roles["train"]), 50))
        yy = roles["train"]["lge"].to_numpy()
        clf = fm.make_classifier(name, 0, threads=args.threads)
        t0 = time.perf_counter()
        clf.fit(X, yy)
        clf.predict_proba(np.random.default_rng(1).random((3000, 50)))
        print(f"  {name:24s} fit k=50 + predict 3000 images: {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    result = fm.fit_fold(features, index, splits, 0, settings)
    total = time.perf_counter() - t0
    print(f"full fold, {len(settings.k_candidates)} k x {len(settings.classifiers)} classifiers: {total:.1f} s")
    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        t0 = time.perf_counter()
        joblib.dump({"fold": 0, "models": result.models, "settings": settings}, path, compress=3)
        print(f"model.joblib (all configurations, compress=3): {path.stat().st_size / 1e6:.1f} MB, "
              f"written in {time.perf_counter() - t0:.1f} s")
    # statistics of the evaluation
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 160)
    a, b = rng.normal(y, 1.0), rng.normal(y, 1.5)
    t0 = time.perf_counter()
    for _ in range(100):
        delong_test(y, a, b)
    print(f"DeLong test, 160 patients: {(time.perf_counter() - t0) * 10:.2f} ms")
    t0 = time.perf_counter()
    roc_with_band(y, a, n_boot=1000)
    print(f"ROC band, 1000 bootstrap replicates, 160 patients: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
