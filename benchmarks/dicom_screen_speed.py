"""Benchmark: wall time to screen a DICOM cine of 10 slices x 25 phases (250 files) on one core, after start-up.

    .venv/bin/python benchmarks/dicom_screen_speed.py                  # trains a small study in a temp folder
    .venv/bin/python benchmarks/dicom_screen_speed.py --workdir /tmp/dss   # the same, kept (and reused) there
    .venv/bin/python benchmarks/dicom_screen_speed.py --bundle B --manifest COHORT/manifest.csv --patient ID

The bundle must carry a segmenter (ES is picked from its LV volume curve over all 25 phases, then both
stacks are segmented: masks included). Without --bundle a small study is trained first (shipped pyradiomics
parameters and CNN width; the segmenter with the shipped channels, one epoch: its cost, not its quality,
counts here), with exams of 10 slices of --size pixels. The cine is written with pydicom from the patient's
ED and ES (phases in between are blends along a contraction curve), one classic series of 250 files.

The screening runs in a fresh process (`torch.set_num_threads(1)`, OMP/MKL 1 thread): reported are start-up
(imports + bundle load) and the median over --repeats of what `screen_api` does with a loaded bundle: detect
the cine, scan headers, decode pixels, the ES curve (25 phases x 3 mid slices), then `screen_exam` (checks,
both stacks segmented, preprocessing, radiomics, CNN); Grad-CAM off.
Goal (issue 23): <= 10 s after start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N_PHASES = 25
ES_PHASE = 9


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: import, load, screen the cine --repeats times; prints one JSON line.

    `read_dicom_exam` is `read_exam` = `read_cine` + `select_phases` + the two phase images; its two parts are
    timed here by calling them as it does."""
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from cinescar.dicom.exam import DicomExam
    from cinescar.dicom.phases import select_phases
    from cinescar.dicom.reader import read_cine
    from cinescar.screening import dicom_exam as dx
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import screen_exam

    bundle = load_bundle(args.bundle)  # start-up: what a service does once
    t_start = time.perf_counter() - t0
    runs, reads, curves, result, dicom = [], [], [], None, None
    for _ in range(args.repeats):  # what screen_api does after loading the bundle
        t = time.perf_counter()
        assert dx.is_dicom_cine_folder(args.cine)
        cine = read_cine(args.cine, "BENCH")  # headers, stacking, pixels
        reads.append(time.perf_counter() - t)
        t1 = time.perf_counter()
        sel = select_phases(cine, lv_volume_ml=bundle.segmenter.lv_volume_ml)  # the ES volume curve
        curves.append(time.perf_counter() - t1)
        dicom = DicomExam(cine, sel, cine.phase_image(sel.ed), cine.phase_image(sel.es))
        exam, volumes = dx.exam_inputs(dicom, "BENCH", Path(args.cine))
        result = screen_exam(bundle, exam, volumes=volumes)
        runs.append(time.perf_counter() - t)
    probs = {name: m.get("probability") for name, m in result["models"].items()}
    print(json.dumps({"startup": t_start, "runs": runs, "reads": reads, "curves": curves,
                      "timing": result["timing_s"], "probabilities": probs, "es": dicom.selection.es,
                      "ed": dicom.selection.ed, "curve_ml": dicom.selection.lv_volume_ml,
                      "threads": torch.get_num_threads()}))


def write_cine(manifest: Path, patient: str, folder: Path) -> Path:
    """25 phases from the patient's ED and ES: a cosine contraction with its minimum (the ES image) at ES_PHASE."""
    import numpy as np
    import pandas as pd
    import SimpleITK as sitk

    sys.path.insert(0, str(REPO / "tests"))
    import dicom_fixtures as F

    row = pd.read_csv(manifest).set_index("patient_id").loc[patient]
    ed, es = (sitk.Cast(sitk.ReadImage(str(manifest.parent / row[c])), sitk.sitkFloat32)
              for c in ("ed_image", "es_image"))
    phases = []
    for p in range(N_PHASES):
        w = 0.5 - 0.5 * np.cos(np.pi * (p / ES_PHASE if p <= ES_PHASE else (N_PHASES - p) / (N_PHASES - ES_PHASE)))
        img = sitk.Round(ed * float(1 - w) + es * float(w))
        phases.append(sitk.Cast(sitk.Clamp(img, lowerBound=0.0), sitk.sitkUInt16))
    return F.write_cine_from_images(folder, phases)


def prepare(workdir: Path, size: int) -> tuple[Path, Path, str]:
    """A small study with the shipped radiomics parameters, CNN width and segmenter channels; its bundle."""
    sys.path.insert(0, str(REPO / "tests"))
    from screening_fixtures import train_tiny_study, working_dir

    from cinescar.config import load_config
    from cinescar.screening.publish import build_bundle
    from cinescar.segmentation.run import crossfit_job, train_job

    shipped = load_config()
    t = time.perf_counter()
    study = train_tiny_study(workdir / "study", n_internal=12, n_external=2, n_slices=10, size=size,
                             base_width=int(shipped["dl"]["network"]["base_width"]),
                             params_file=REPO / "config" / "radiomics.yaml")
    root = study.root / "results" / "segmentation"
    cfg = load_config(overrides={"mlflow": {"enabled": False}, "segmentation": {"max_epochs": 1}})
    with working_dir(study.root):
        crossfit_job({"splits": str(study.path("results/splits/splits.json"))},
                     {"crossfit": str(root / "crossfit.json")}, {"cfg": cfg})
        k_folds = int(cfg["segmentation"]["crossfit_folds"])
        for k in range(k_folds):
            train_job({"manifest": str(study.cohort / "manifest.csv"), "crossfit": str(root / "crossfit.json")},
                      {"model": str(root / f"fold{k}/model.pt"), "meta": str(root / f"fold{k}/model.json")},
                      {"cfg": cfg}, k)
        out = study.root / "results" / "bundle"
        build_bundle(out, **study.workflow_inputs(), cfg={**study.cfg, "segmentation": cfg["segmentation"]},
                     segmentation_models=[root / f"fold{k}/model.pt" for k in range(k_folds)],
                     segmentation_metas=[root / f"fold{k}/model.json" for k in range(k_folds)])
    print(f"trained a small study with a segmenter in {time.perf_counter() - t:.0f} s")
    splits = json.loads(study.path("results/splits/splits.json").read_text())
    return out, study.cohort / "manifest.csv", splits["test"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle")
    ap.add_argument("--manifest")
    ap.add_argument("--patient")
    ap.add_argument("--cine", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=192, help="matrix of the trained small study (default 192)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", help="train the small study here and keep it; reused when its bundle exists "
                    "(compare versions on the same bundle and cine)")
    ap.add_argument("--json", help="also write the child's figures (runs, stages, probabilities) to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(REPO / "benchmarks"))
    from screen_speed import machine

    print(f"machine: {machine()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle is None and args.workdir and (Path(args.workdir) / "study/results/bundle").is_dir():
            study = Path(args.workdir) / "study"
            bundle, manifest = study / "results/bundle", study / "cohort/manifest.csv"
            patient = json.loads((study / "results/splits/splits.json").read_text())["test"][0]
            print(f"reusing the small study in {study}")
        elif args.bundle is None:
            bundle, manifest, patient = prepare(Path(args.workdir or tmp), args.size)
        else:
            if not (args.manifest and args.patient):
                ap.error("--bundle needs --manifest and --patient")
            bundle, manifest, patient = Path(args.bundle), Path(args.manifest), args.patient
        cine = write_cine(Path(manifest), patient, Path(tmp) / "cine" / patient)
        n_files = len(list(cine.iterdir()))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, __file__, "--child", "--bundle", str(bundle), "--cine", str(cine),
                               "--repeats", str(args.repeats)], capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"DICOM cine: {n_files} files ({N_PHASES} phases x {n_files // N_PHASES} slices); ED {r['ed']}, ES {r['es']} "
          f"(written at {ES_PHASE}); torch threads {r['threads']}")
    print(f"start-up (imports + bundle load): {r['startup']:.2f} s")
    print(f"screen the DICOM cine folder, Grad-CAM off: median {statistics.median(r['runs']):.2f} s over "
          f"{len(r['runs'])} runs (goal <= 10 s; runs: {', '.join(f'{x:.2f}' for x in r['runs'])})")
    print(f"  read_cine (headers, stacking, pixels): median {statistics.median(r['reads']):.2f} s; ES volume curve "
          f"({N_PHASES} phases x 3 mid slices): median {statistics.median(r['curves']):.2f} s")
    print(f"  last run's screen_exam stages (s): {r['timing']}")
    print(f"probabilities: {json.dumps(r['probabilities'])}")
    print(f"ES curve (ml): {json.dumps([round(v, 4) for v in r['curve_ml']])}")
    if args.json:
        Path(args.json).write_text(json.dumps({**r, "machine": machine(), "load": os.getloadavg()}, indent=1))

if __name__ == "__main__":
    main()
