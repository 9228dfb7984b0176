"""Benchmark: pyradiomics extraction time per image (full set, one process), 2-process speed-up, and where the
time goes (per image type, per feature class).

    .venv/bin/python benchmarks/radiomics_extraction.py                       # synthetic 256 x 256 slices
    .venv/bin/python benchmarks/radiomics_extraction.py --store results/preprocess   # real preprocessed images

The paper reports ~1 s per image. The 2-process figure is a process pool inside one job
(`radiomics.extract_threads: 2`); the workflow's own parallelism is one Snakemake job per centre
(`--cores N`), which scales the same way when centres are of similar size.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cinescar.radiomics.extract import extract_image, extract_images, make_extractor  # noqa: E402


def synthetic_slices(n: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cine-like slices in [0, 1]: bright blood pool, textured myocardial ring (radius 25-35 mm), noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    images = np.empty((n, size, size), np.float32)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        inner = 25 + rng.uniform(-3, 3)
        ring = (r >= inner) & (r < inner + 10)
        img = 0.25 + 0.08 * rng.standard_normal((size, size))
        img[r < inner] += 0.5
        img[ring] += 0.1 + 0.05 * rng.standard_normal(int(ring.sum()))
        images[i] = np.clip(img, 0, 1)
        masks[i] = ring
    return images, masks


def store_slices(root: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    from cinescar.preprocessing.store import load_arrays, load_index

    index = load_index(root / "index.parquet").head(n)
    return load_arrays(index, root)


def per_image_seconds(extractor, images, masks, repeats: int, clock=time.process_time) -> float:
    """Median over repeats of the mean seconds per image.

    CPU time of this process by default: on a shared 2-core machine other jobs inflate wall-clock time,
    not the CPU time this single-threaded extraction needs.
    """
    runs = []
    for _ in range(repeats):
        t0 = clock()
        for img, msk in zip(images, masks):
            extract_image(extractor, img, msk)
        runs.append((clock() - t0) / len(images))
    return statistics.median(runs)


def variant(params: dict, image_types: dict, classes: list[str], tmp: Path, name: str) -> Path:
    """A copy of the parameter file restricted to some image types and feature classes."""
    p = dict(params)
    p["imageType"] = image_types
    p["featureClass"] = {c: None for c in classes}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(REPO / "config" / "radiomics.yaml"))
    ap.add_argument("--store", default=None, help="preprocessed store root (results/preprocess); default synthetic")
    ap.add_argument("--images", type=int, default=40, help="images for the single/2-process comparison")
    ap.add_argument("--breakdown-images", type=int, default=10, help="images for the per-type/per-class split")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import radiomics
    import tempfile

    source = args.store or "synthetic"
    images, masks = store_slices(Path(args.store), args.images) if args.store else synthetic_slices(args.images)
    ids = [f"img{i:04d}" for i in range(len(images))]
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs (usable {len(os.sched_getaffinity(0))}), Python {platform.python_version()}, "
          f"pyradiomics {radiomics.__version__}")
    print(f"images: {len(images)} x {images.shape[1]}x{images.shape[2]} from {source}; "
          f"mean mask area {masks.reshape(len(masks), -1).sum(1).mean():.0f} px; params {args.params}")

    extractor = make_extractor(args.params)
    extract_image(extractor, images[0], masks[0])  # warm-up (imports, first-call costs)
    n_features = len(extract_image(extractor, images[0], masks[0]))
    sub_i, sub_m = images[: args.breakdown_images], masks[: args.breakdown_images]
    full = per_image_seconds(extractor, sub_i, sub_m, args.repeats)
    wall = per_image_seconds(extractor, sub_i, sub_m, args.repeats, clock=time.perf_counter)
    print(f"\nfull extraction ({n_features} features), one process: {full:.3f} CPU s/image, {wall:.3f} wall s/image "
          f"(median of {args.repeats} runs over {args.breakdown_images} images; load average "
          f"{os.getloadavg()[0]:.1f})")

    timings = {}
    for processes in (1, 2):
        runs, busy = [], []
        for _ in range(args.repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            extract_images(images, masks, ids, args.params, processes=processes)
            runs.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            busy.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs[-1])
        timings[processes] = statistics.median(runs)
        note = (f"; workers kept {statistics.median(busy):.2f} CPUs busy on average" if processes > 1 else "")
        print(f"extract_images, {processes} process(es), {len(images)} images: {timings[processes]:.2f} s "
              f"= {timings[processes] / len(images):.3f} s/image (median of {args.repeats}; "
              f"includes pool start-up and the feature-name probe{note})")
    print(f"speed-up with 2 processes: {timings[1] / timings[2]:.2f}x (wall clock; load average "
          f"{os.getloadavg()[0]:.1f} -- other jobs on the machine shrink it)")

    params = yaml.safe_load(Path(args.params).read_text())
    classes = [c for c in params.get("featureClass", {}) if c != "shape2D"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = per_image_seconds(make_extractor(variant(params, {"Original": {}}, ["shape2D"], tmp, "base")),
                                 sub_i, sub_m, args.repeats)
        print(f"\nwhere the CPU time goes ({args.breakdown_images} images; each line = that part alone minus the "
              f"fixed cost):\n  fixed cost (load, normalise, mask check, shape2D): {base:.4f} s/image")
        rows = []
        for image_type, custom in params.get("imageType", {}).items():
            t = per_image_seconds(make_extractor(variant(params, {image_type: custom or {}}, classes, tmp,
                                                         image_type)), sub_i, sub_m, args.repeats)
            rows.append((image_type, t - base))
        for name, t in rows:
            print(f"  image type {name:<12} (filter + {len(classes)} classes): {t:.4f} s/image "
                  f"({100 * t / full:.0f} %)")
        all_types = params.get("imageType", {})
        for cls in classes:
            t = per_image_seconds(make_extractor(variant(params, all_types, [cls], tmp, cls)), sub_i, sub_m,
                                  args.repeats)
            print(f"  feature class {cls:<11} (on all image types, incl. filtering): {t - base:.4f} s/image")


if __name__ == "__main__":
    main()
