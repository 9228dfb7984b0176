"""Benchmark: screening an exam that comes without masks (the bundle's segmenter draws them), one CPU thread.

    .venv/bin/python benchmarks/screen_without_masks.py --bundle runs/def/results/bundle \
        --manifest runs/def/results/synthetic/cohort/manifest.csv [--patients 5] [--repeats 3]

Issue 22's goal: `cinescar screen` on an exam with no masks answers in <= 3 s after start-up on CPU. For each of
the first --patients internal-test patients of the manifest, the exam is screened from its images alone
(the manifest's masks are left out); per exam the median over --repeats of each step of the result's
`timing_s` (checks, segmentation, preprocessing, radiomics, CNN, models), then the median over exams. Start-up
(imports + bundle verification and load) is measured once, in this process, before the first exam.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from screen_speed import machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--patients", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from cinescar.cohort.contract import MASK_COLUMNS
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import Exam, exam_from_manifest, screen_exam

    bundle = load_bundle(args.bundle)
    startup = time.perf_counter() - t0
    if bundle.segmenter is None:
        raise SystemExit(f"{args.bundle} carries no segmenter (segmentation.enabled was false)")
    import pandas as pd

    table = pd.read_csv(args.manifest, dtype=str)
    pids = table[table["cohort"] == "internal"]["patient_id"].tolist()
    split = Path(args.manifest).parents[2] / "splits" / "splits.json"
    if split.is_file():  # internal-test patients when the run's splits are beside the cohort
        import json

        test = set(json.loads(split.read_text())["test"])
        pids = [p for p in pids if p in test] or pids
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}")
    print(f"start-up (imports + bundle load): {startup:.2f} s; {len(bundle.segmenter.nets)} segmentation networks")
    per_exam = []
    for pid in pids[:args.patients]:
        exam = exam_from_manifest(args.manifest, pid)
        exam = Exam(exam.patient_id, {c: p for c, p in exam.files.items() if c not in MASK_COLUMNS}, exam.source)
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            result = screen_exam(bundle, exam)
            wall = time.perf_counter() - t
            runs.append({**result["timing_s"], "wall": wall, "images": len(result["images"]),
                         "flags": len(result["segmentation"]["qc_flags"])})
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        per_exam.append(med)
        print(f"  {pid}: {med['images']:.0f} images, {med['wall']:.2f} s (segmentation {med['segmentation']:.2f} s, "
              f"radiomics {med['radiomics']:.2f} s, cnn {med['cnn']:.2f} s), QC flags {med['flags']:.0f}")
    keys = ["checks", "segmentation", "preprocessing", "radiomics", "cnn", "models", "wall"]
    print("median over exams: " + ", ".join(f"{k} {statistics.median(e[k] for e in per_exam):.2f} s" for k in keys))
    print(f"goal <= 3 s after start-up: {'met' if statistics.median(e['wall'] for e in per_exam) <= 3 else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
