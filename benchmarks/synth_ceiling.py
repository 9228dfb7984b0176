"""What the synthetic cohort's own truth allows: AUC ceilings of the clinical logit, mask geometry and scar signal.

Usage:
    python benchmarks/synth_ceiling.py                          # the config's cohort size (synthetic: section)
    python benchmarks/synth_ceiling.py --internal 200 --external 50 --seed 42 [--workers 2]

Renders every patient in memory with the generator (`draw_population` + `simulate_patient`, the same
patients `generate_cohort` writes for that size and seed) and prints, per cohort (internal, external), the
patient-level AUC of

1. **clinical logit** - the generator's own label logit on the true (continuous) geometry, sex and EF: the
   exact score the labels were drawn from, so no clinical model can beat it.
2. **mask geometry** - a logistic regression (standardised; internal: 5-fold stratified out-of-fold,
   external: fitted on all internal patients) on what the masks measure: LVM, MWT, LVEDV, LVESV, LVEF (the
   manifest's columns, measured on the rendered masks) and the largest ED myocardial area of a slice.
   What an image model can reach from the contour's shape alone, without seeing scar.
3. **scar signal, location known** - an observer that is told where scar is or would be (truth/ scar map;
   for an LGE- patient the map of its LGE+ twin, same anatomy, same noise, the generator's own scar draw)
   and reads the acquired image there: per slice t = (scar-weighted mean - healthy myocardium mean) /
   healthy SD x sqrt(effective scar pixels); patient score = max |t| over the map's scar slices, ED and ES.
   Scar signal only (geometry plays no part), with the real noise, bias, texture and artifacts.
4. **scar signal, ideal observer bound** - signal known exactly: d'^2 = sum over pixels of
   (noiseless scarred - noiseless scar-free signal)^2 / noise_sd^2 (both phases); AUC = mean over LGE+
   patients of Phi(d'/sqrt 2). An upper bound for any image model (it ignores blur, bias and the texture the
   observer would have to know).

Prints the command, machine and wall time. No assertion: the figures go into docs/synthetic-cohort.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cinescar.cohort.synth import draw_population, label_logit, simulate_patient
from cinescar.cohort.synth_signal import TISSUES, bssfp_signal

REPO = Path(__file__).resolve().parents[1]
GEOMETRY = ["LVM", "MWT", "LVEDV", "LVESV", "LVEF", "max_myo_area"]


def slice_t(image: np.ndarray, mask: np.ndarray, scar: np.ndarray) -> float:
    """Location-known scar statistic of one slice (see module docstring); NaN without scar or healthy pixels."""
    inside = mask > 0
    w = np.where(inside, scar, 0.0).astype(np.float64)
    healthy = inside & (scar < 0.05)
    if w.sum() < 1.0 or healthy.sum() < 10:
        return math.nan
    img = image.astype(np.float64)
    ref = img[healthy]
    sd = ref.std()
    if sd == 0:
        return math.nan
    n_eff = w.sum() ** 2 / (w**2).sum()
    return float(((w * img).sum() / w.sum() - ref.mean()) / sd * math.sqrt(n_eff))


def patient_record(p, seed: int) -> dict:
    """One patient: label, clinical logit inputs, mask geometry, scar statistics (real images + scar twin)."""
    real = simulate_patient(p, seed)
    twin = simulate_patient(dataclasses.replace(p, lge=1 - p.lge), seed)
    scarred, clean = (real, twin) if p.lge else (twin, real)
    acq = p.acq
    noise_sd = float(bssfp_signal(1000.0, 45.0, TISSUES["myocardium"].pd, acq.flip_deg, acq.tr_ms, acq.te_ms)) / acq.snr
    d2 = sum(float((((scarred.noiseless[ph] - clean.noiseless[ph]) / noise_sd) ** 2).sum()) for ph in ("ED", "ES"))
    area = acq.pixel_mm**2
    ts = []
    for ph in ("ED", "ES"):
        scar_map = scarred.scar[ph]  # where scar is (LGE+) or would be (LGE-: the twin's draw)
        for s in scarred.scar_slices:
            if scar_map[s].sum() * area < 10.0:
                continue
            t = slice_t(real.images[ph][s], real.masks[ph][s], scar_map[s])
            if not math.isnan(t):
                ts.append(abs(t))
    row = real.row
    return {
        "patient_id": p.patient_id, "cohort": p.cohort, "lge": int(p.lge),
        "logit": float(label_logit([p.true_metrics["MWT"]], [p.true_metrics["LVM"]], [p.sex == "M"],
                                   [p.anat.ef_target], p.cohort)[0]),
        **{k: float(row[k]) for k in GEOMETRY[:-1]},
        "max_myo_area": float(real.masks["ED"].sum(axis=(1, 2)).max() * area),
        "scar_t": max(ts) if ts else 0.0,
        "d_prime": math.sqrt(d2),
    }


def _job(args: tuple) -> dict:
    p, seed = args
    return patient_record(p, seed)


def auc(y, s) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else math.nan


def ceilings(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    rows = []
    internal = table[table["cohort"] == "internal"]
    geo = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    oof = cross_val_predict(geo, internal[GEOMETRY], internal["lge"], cv=cv, method="predict_proba")[:, 1]
    geo.fit(internal[GEOMETRY], internal["lge"])
    for cohort, part in table.groupby("cohort", sort=False):
        pos = part[part["lge"] == 1]
        geometry = oof if cohort == "internal" else geo.predict_proba(part[GEOMETRY])[:, 1]
        rows.append({
            "cohort": cohort, "patients": len(part), "lge_pos": int(part["lge"].sum()),
            "clinical_logit": auc(part["lge"], part["logit"]),
            "mask_geometry": auc(part["lge"], geometry),
            "scar_location_known": auc(part["lge"], part["scar_t"]),
            "scar_ideal_bound": float(norm.cdf(pos["d_prime"] / math.sqrt(2)).mean()) if len(pos) else math.nan,
            "median_d_prime": float(pos["d_prime"].median()) if len(pos) else math.nan,
        })
    return pd.DataFrame(rows)


def main() -> None:
    from cinescar.config import load_config

    cfg = load_config()  # config/config.yaml resolved (it holds only what differs from the schema)
    syn = cfg["synthetic"]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--internal", type=int, default=int(syn.get("internal_patients", 60)))
    ap.add_argument("--external", type=int, default=int(syn.get("external_patients", 20)))
    ap.add_argument("--seed", type=int, default=int(cfg["seed"]))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--csv", type=Path, default=None, help="also write the per-patient table here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    patients = draw_population(args.internal, args.external, seed=args.seed,
                               prevalence_internal=float(syn.get("prevalence_internal", 0.36)),
                               prevalence_external=float(syn.get("prevalence_external", 0.57)),
                               external_artifact_fraction=syn.get("external_artifact_fraction"))
    jobs = [(p, args.seed) for p in patients]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            records = list(pool.map(_job, jobs, chunksize=4))
    else:
        records = [_job(j) for j in jobs]
    table = pd.DataFrame(records)
    if args.csv:
        table.to_csv(args.csv, index=False)
    result = ceilings(table, args.seed)
    wall = time.perf_counter() - t0
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; wall {wall:.0f} s")
    print(f"cohort: {args.internal} internal + {args.external} external, seed {args.seed}")
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(result.to_string(index=False))


if __name__ == "__main__":
    main()
