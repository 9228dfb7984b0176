"""Benchmark: wall time to screen one exam of ~20 images on one CPU core, and where it goes.

    .venv/bin/python benchmarks/screen_speed.py                     # trains a small study in a temp folder
    .venv/bin/python benchmarks/screen_speed.py --bundle results/bundle --manifest COHORT/manifest.csv --patient ID

Without --bundle (and no results/bundle/), a small study is trained first with the shipped pyradiomics
parameter file (config/radiomics.yaml) and the shipped CNN width (dl.network.base_width), so the models
cost what they cost in a real bundle; its exams have 10 slices per phase (20 images) of 192 x 192 pixels.

The screening itself runs in a fresh Python process (so start-up counts the real imports), with
`torch.set_num_threads(1)` and pyradiomics in one process. Reported: start-up (imports + bundle load), then
per exam the median over --repeats of: checks + preprocessing, radiomics, CNN, the rest (models, aggregation,
result), and the total; Grad-CAM overlays are timed separately (they import MONAI on first use).
Goal (issue #9): under 2 s per exam after start-up.

Then many exams, one start-up (issue 27, `cinescar screen --out-dir`, Grad-CAM off): --batch exams (copies of the
manifest's first patients' exams, cycled, each its own exam folder) are screened by `screening.batch.screen_batch`
in a fresh process per worker count in --workers (default 1,2), each worker on one torch thread; printed: the
start-up (imports + bundle verification and load + workers started), exams per minute after it, and the CPU
seconds per exam. Goal (issue 27): >= 60 exams per minute on 2 cores for 20-image exams.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()} | Python {platform.python_version()} | {os.cpu_count()} CPU(s): {cpu}")


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: import, load, screen --repeats times; prints one JSON line."""
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import exam_from_manifest, screen_exam

    t_import = time.perf_counter() - t0
    bundle = load_bundle(args.bundle)
    t_start = time.perf_counter() - t0
    exam = exam_from_manifest(args.manifest, args.patient)
    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        result = screen_exam(bundle, exam)
        runs.append({**result["timing_s"], "wall": time.perf_counter() - t})
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        gc = screen_exam(bundle, exam, gradcam_dir=tmp, gradcam_images=args.gradcam_images)
    t_gc_first = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        gc2 = screen_exam(bundle, exam, gradcam_dir=tmp, gradcam_images=args.gradcam_images)
    # the worst case: every feature of the parameter file (as under failure_policy: exclude)
    from cinescar.preprocessing.store import preprocess_exam
    from cinescar.radiomics.restricted import restricted_extractor
    from cinescar.screening.screen import model_feature_names, radiomics_features

    images, masks, rows = preprocess_exam(exam.patient_id, exam.files, bundle.preprocess_settings)
    full = restricted_extractor(bundle.radiomics_params, None)
    t = time.perf_counter()
    radiomics_features(full, images, masks, rows["image_id"].tolist(), model_feature_names(bundle))
    t_full = time.perf_counter() - t
    print(json.dumps({"imports": t_import, "radiomics_all_features": t_full, "startup": t_start, "runs": runs, "n_images": len(result["images"]),
                      "gradcam_first": t_gc_first, "gradcam_first_part": gc["timing_s"]["gradcam"],
                      "gradcam_second_part": gc2["timing_s"]["gradcam"], "n_gradcam": len(gc["gradcam"]),
                      "threads": torch.get_num_threads(), "features_needed": len(bundle.radiomics_features_needed()
                                                                                  or []),
                      "cnn_width": bundle.cnn("dl").hparams_dict["base_width"]}))


def batch_child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: import, then one batch (start-up once); prints one JSON line."""
    import resource

    t0 = time.perf_counter()
    from cinescar.screening.batch import screen_batch

    t_import = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        r = screen_batch(args.bundle, args.exams, out_dir=out, workers=args.batch_workers, no_gradcam=True,
                         torch_threads=1)
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"imports": t_import, "startup": t_import + r.startup_s, "screening": r.screening_s,
                      "per_minute": r.exams_per_minute, "workers": r.workers,
                      "cpu": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                      "n": int(len(r.summary)), "images": int(r.summary["n_images"].sum()),
                      "status": r.summary["status"].value_counts().to_dict()}))


def exam_folders(manifest: Path, n: int, dest: Path) -> Path:
    """`n` exam folders (ED, ED_mask, ES, ES_mask) copied from the manifest's patients, cycled."""
    import shutil

    import pandas as pd

    rows = pd.read_csv(manifest, dtype=str).to_dict("records")
    for i in range(n):
        row = rows[i % len(rows)]
        folder = dest / f"{row['patient_id']}-{i // len(rows) + 1}"
        folder.mkdir(parents=True)
        for col, stem in (("ed_image", "ED"), ("ed_mask", "ED_mask"), ("es_image", "ES"), ("es_mask", "ES_mask")):
            src = manifest.parent / row[col]
            shutil.copy(src, folder / f"{stem}{''.join(src.suffixes)}")
    return dest


def prepare(workdir: Path) -> tuple[Path, Path, str]:
    """Train a small study with the shipped radiomics parameters and CNN width; return bundle, manifest, patient."""
    sys.path.insert(0, str(REPO / "tests"))
    from screening_fixtures import train_tiny_study, working_dir

    from cinescar.config import load_config
    from cinescar.screening.publish import build_bundle

    width = int(load_config()["dl"]["network"]["base_width"])
    t = time.perf_counter()
    study = train_tiny_study(workdir / "study", n_internal=12, n_external=2, n_slices=10, size=192,
                             base_width=width, params_file=REPO / "config" / "radiomics.yaml")
    with working_dir(study.root):
        build_bundle(study.root / "results" / "bundle", cfg=study.cfg, **study.workflow_inputs())
    print(f"trained a small study in {time.perf_counter() - t:.0f} s (CNN base width {width})")
    splits = json.loads(study.path("results/splits/splits.json").read_text())
    return study.root / "results" / "bundle", study.cohort / "manifest.csv", splits["test"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle")
    ap.add_argument("--manifest")
    ap.add_argument("--patient")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gradcam-images", type=int, default=3)
    ap.add_argument("--batch", type=int, default=40, help="exams screened after one start-up (0: skip)")
    ap.add_argument("--workers", default="1,2", help="worker counts for the batch, e.g. 1,2")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--exams", help=argparse.SUPPRESS)
    ap.add_argument("--batch-workers", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.batch_child:
        batch_child(args)
        return
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle is None and (REPO / "results/bundle/bundle.json").exists() and args.manifest:
            args.bundle = str(REPO / "results/bundle")
        if args.bundle is None:
            bundle, manifest, patient = prepare(Path(tmp))
        else:
            if not (args.manifest and args.patient):
                ap.error("--bundle needs --manifest and --patient")
            bundle, manifest, patient = Path(args.bundle), Path(args.manifest), args.patient
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, __file__, "--child", "--bundle", str(bundle), "--manifest",
                               str(manifest), "--patient", patient, "--repeats", str(args.repeats),
                               "--gradcam-images", str(args.gradcam_images)],
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        batches = []
        if args.batch > 0:
            exams = exam_folders(manifest, args.batch, Path(tmp) / "exams")
            for w in (int(x) for x in args.workers.split(",")):
                proc = subprocess.run([sys.executable, __file__, "--batch-child", "--bundle", str(bundle), "--exams",
                                       str(exams), "--batch-workers", str(w)],
                                      capture_output=True, text=True, env=env, check=False)
                if proc.returncode != 0:
                    sys.exit(proc.stderr[-3000:])
                batches.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    runs = r["runs"]

    def med(key: str) -> float:
        return statistics.median(run.get(key, 0.0) for run in runs)

    pre = statistics.median(run["checks"] + run["preprocessing"] for run in runs)
    rest = statistics.median(run["wall"] - run["checks"] - run["preprocessing"] - run["radiomics"] - run["cnn"]
                             for run in runs)
    print(f"exam: patient {patient}, {r['n_images']} images; bundle {bundle}")
    print(f"torch threads {r['threads']}, pyradiomics 1 process; CNN base width {r['cnn_width']}; "
          f"{r['features_needed']} radiomics features extracted per image (those the models read)")
    print(f"start-up (imports + bundle load)     {r['startup']:.2f} s  (imports {r['imports']:.2f} s)")
    print(f"per exam, median of {len(runs)} runs:")
    print(f"  checks + preprocessing             {pre:.3f} s")
    print(f"  radiomics                          {med('radiomics'):.3f} s")
    print(f"    (every feature of the parameter file instead: {r['radiomics_all_features']:.3f} s)")
    print(f"  CNN                                {med('cnn'):.3f} s")
    print(f"  rest (models, aggregation, result) {rest:.3f} s")
    print(f"  total                              {med('wall'):.3f} s   (goal < 2 s)  runs: "
          + ", ".join(f"{run['wall']:.2f}" for run in runs))
    print(f"Grad-CAM, {r['n_gradcam']} overlays: first exam {r['gradcam_first_part']:.2f} s (incl. MONAI import), "
          f"next exam {r['gradcam_second_part']:.2f} s")
    for b in batches:
        print(f"batch ({b['n']} exams, {b['images'] / b['n']:.1f} images per exam, Grad-CAM off), {b['workers']} "
              f"worker(s): start-up {b['startup']:.2f} s (imports {b['imports']:.2f} s), then {b['screening']:.1f} s "
              f"= {b['per_minute']:.1f} exams per minute (goal >= 60 on 2 cores); {b['cpu'] / b['n']:.2f} CPU-s per "
              f"exam incl. start-up; {b['status']}")
    if len(batches) > 1:
        print(f"  {batches[-1]['workers']} vs {batches[0]['workers']} worker(s): "
              f"{batches[-1]['per_minute'] / batches[0]['per_minute']:.2f}x the rate; load average "
              f"{os.getloadavg()[0]:.1f} (uptime) at the end")


if __name__ == "__main__":
    main()
