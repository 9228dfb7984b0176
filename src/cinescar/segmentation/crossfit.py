"""Which patients each segmentation network may see, and which network predicts which patient.

Development patients (the scar folds' train + validation patients of `splits.json`) are dealt into
`crossfit_folds` groups by a seeded permutation; network k trains on every other group plus the masks-only
`extra_cohorts` and predicts group k (out of fold). Internal-test and external patients never train a
network; they, and every screened exam, get the mean of all networks ("ensemble"). `crossfit.json` is the one
record of it, and `tests/test_segmentation_leakage.py` proves the sets disjoint.
"""

from __future__ import annotations

import numpy as np

ENSEMBLE = "ensemble"


def development_patients(splits: dict) -> list[str]:
    pids = {p for f in splits["folds"] for p in (*f["train"], *f["val"])}
    return sorted(pids)


def crossfit_assignment(splits: dict, k: int, seed: int, extra: list[str] | None = None) -> dict:
    """`{"folds": [{"fold", "train", "predict"}], "ensemble": [test + external], "extra": [...]}`."""
    dev = development_patients(splits)
    order = np.random.default_rng(seed).permutation(len(dev))
    groups = [sorted(dev[i] for i in order[g::k]) for g in range(k)]
    extra = sorted(extra or [])
    folds = [{"fold": g, "train": sorted({p for h, grp in enumerate(groups) if h != g for p in grp}) + extra,
              "predict": groups[g]} for g in range(k)]
    held_out = sorted({*splits["test"], *splits["external"]})
    # extra patients are keyed `extra{i}/{patient_id}` (segmentation/run.py): their bare IDs are compared, so
    # a masks-only cohort that holds a study's held-out patient (e.g. ACDC imported twice) is refused
    overlap = set(held_out) & (set(dev) | set(extra) | {e.split("/", 1)[-1] for e in extra})
    if overlap:
        raise ValueError(f"patients both held out and in development or extra_cohorts: {sorted(overlap)[:5]}")
    return {"seed": seed, "folds": folds, ENSEMBLE: held_out, "extra": extra}


def predicting_network(assignment: dict) -> dict[str, str]:
    """patient_id -> 'fold{k}' (out of fold) or 'ensemble'."""
    out = {p: ENSEMBLE for p in assignment[ENSEMBLE]}
    for f in assignment["folds"]:
        out.update({p: f"fold{f['fold']}" for p in f["predict"]})
    return out
