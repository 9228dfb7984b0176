"""Benchmark: does a *trained* segmenter pick end-systole right on synthetic DICOM cines? (issue 23)

    PYTHONPATH=src .venv/bin/python benchmarks/dicom_es_picking.py [--workdir DIR] [--train 16] [--epochs 30]

The synthetic cohort (`cinescar.cohort.synth`, seed --seed) gives --train + 1 + --held-out patients. A
segmenter is trained with the segmentation stage's own API (`read_stack_fields` -> `train_network`, the
shipped `segmentation` settings except channels, epochs, crop and learning rate below) on the first --train
patients' ED and ES stacks and their masks, with early stopping on the next one. Each held-out patient's ED
stack becomes a cine of N phases (`tests/dicom_fixtures.contracting_cine`: the LV cavity shrinks linearly to
a known ES phase and back; epicardium and surroundings stay), written in each of the three layouts (one
series, one series per slice, one enhanced multi-frame file), then read with `cinescar.dicom.read_exam`
exactly as `cinescar screen` does: ES = the phase with the smallest LV cavity volume of the segmenter on the
3 mid-ventricular slices. Printed: per cine the true and the picked ES and the curve, then how many were
exact and within one phase. Torch and ITK use one thread; the outcome is deterministic on one machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

CINES = [(25, 9), (20, 7), (30, 11), (25, 8), (16, 6), (25, 10), (20, 6), (30, 12)]
"""(phases, ES phase) of the held-out patients' cines, in turn."""


def train_segmenter(cohort: Path, train: list[str], val: list[str], args: argparse.Namespace):
    """The segmentation stage's training on these patients' ED/ES stacks; a `Segmenter` and the result."""
    import pandas as pd

    from cinescar.config import load_config
    from cinescar.segmentation.data import read_stack_fields
    from cinescar.segmentation.inference import FieldSettings, Segmenter
    from cinescar.segmentation.network import network_params
    from cinescar.segmentation.train import train_network

    settings = FieldSettings(args.size, 1.0, (0.5, 99.5))
    rows = pd.read_csv(cohort / "manifest.csv").set_index("patient_id", drop=False)

    def fields(pids):
        x, y = [], []
        for pid in pids:
            for st in read_stack_fields(cohort, rows.loc[pid], settings.size, settings.spacing_mm,
                                        settings.clip_percentiles):
                x.append(st.fields)
                y.append(st.labels)
        return np.concatenate(x), np.concatenate(y)

    x, y = fields(train)
    vx, vy = fields(val)
    cfg = {**load_config()["segmentation"], "channels": [int(c) for c in args.channels.split(",")],
           "max_epochs": args.epochs, "patience": args.epochs, "crop": 96, "batch_size": 8,
           "learning_rate": 0.003, "threads": 1}
    params = network_params(cfg)
    result = train_network(x, y, vx, vy, params, cfg, args.seed)
    return Segmenter([(params, result.state_dict)], settings), result, len(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="keep the cohort and cines here (default: a temporary folder)")
    ap.add_argument("--train", type=int, default=16, help="training patients (default 16)")
    ap.add_argument("--held-out", type=int, default=6, help=f"patients made into cines (at most {len(CINES)})")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--channels", default="16,32,64,128", help="U-Net channels (default 16,32,64,128)")
    ap.add_argument("--size", type=int, default=160, help="segmenter field side at 1 mm (default 160)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", help="also write the outcome to this file")
    args = ap.parse_args(argv)
    if not 1 <= args.held_out <= len(CINES):
        ap.error(f"--held-out must be 1..{len(CINES)}")

    import tempfile

    import pandas as pd
    import SimpleITK as sitk
    import torch

    import dicom_fixtures as F
    from screen_speed import machine

    from cinescar.cohort.synth import generate_cohort
    from cinescar.dicom import read_exam

    torch.set_num_threads(1)
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        cohort = work / "cohort"
        n = args.train + 1 + args.held_out
        t = time.perf_counter()
        if not (cohort / "manifest.csv").is_file():
            generate_cohort(cohort, n_internal=n, n_external=0, seed=args.seed)
        pids = pd.read_csv(cohort / "manifest.csv")["patient_id"].astype(str).tolist()[:n]
        train, val, held = pids[:args.train], pids[args.train:args.train + 1], pids[args.train + 1:]
        print(f"machine: {machine()}")
        print(f"synthetic cohort (seed {args.seed}): {len(train)} training, {len(val)} early-stopping, "
              f"{len(held)} held-out patients ({time.perf_counter() - t:.0f} s)")
        t = time.perf_counter()
        segmenter, result, n_slices = train_segmenter(cohort, train, val, args)
        print(f"segmenter: channels {args.channels}, field {args.size} px at 1 mm, {n_slices} training slices, "
              f"{args.epochs} epochs in {result.seconds:.0f} s; best validation myocardium Dice "
              f"{result.best_val_dice:.3f} (epoch {result.best_epoch})")
        rows = []
        manifest = pd.read_csv(cohort / "manifest.csv").set_index("patient_id")
        for pid, (n_phases, es) in zip(held, CINES):
            ed = sitk.ReadImage(str(cohort / manifest.loc[pid, "ed_image"]))
            mask = sitk.ReadImage(str(cohort / manifest.loc[pid, "ed_mask"]))
            phases = F.contracting_cine(ed, mask, n_phases, es)
            for layout in F.LAYOUTS:
                folder = work / "cines" / layout / pid
                shutil.rmtree(folder, ignore_errors=True)
                F.write_cine_from_images(folder, phases, layout)
                t = time.perf_counter()
                sel = read_exam(folder, pid, lv_volume_ml=segmenter.lv_volume_ml).selection
                rows.append({"patient": pid, "layout": layout, "phases": n_phases, "es_true": es, "es": sel.es,
                             "ed": sel.ed, "seconds": time.perf_counter() - t,
                             "curve_ml": [round(v, 1) for v in sel.lv_volume_ml]})
                r = rows[-1]
                print(f"{pid} {layout:16s} {n_phases} phases: ES {es}, picked {r['es']} (ED {r['ed']}) "
                      f"in {r['seconds']:.1f} s; curve {r['curve_ml']}")
        exact = sum(r["es"] == r["es_true"] and r["ed"] == 0 for r in rows)
        near = sum(abs(r["es"] - r["es_true"]) <= 1 and r["ed"] == 0 for r in rows)
        print(f"ED right and ES exact in {exact} of {len(rows)} cines ({len(held)} patients x {len(F.LAYOUTS)} "
              f"layouts); ES within one phase in {near}")
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "exact": exact, "within_one": near,
                                                   "dice": result.best_val_dice, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
