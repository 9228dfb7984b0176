"""Patient-wise splits, made once and saved as a JSON artifact every later rule reads.

Held-out internal test (stratified by label, ~21 % of internal patients as in the paper), k folds over the
remaining development patients (stratified), the external cohort untouched. Making the split a file rather
than a function call means no two rules can ever disagree about who is where.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from cinescar.cohort.contract import cohort_role
from cinescar.errors import CinescarError

ROLES = ("train", "val", "val_all", "test", "external")


def make_splits(manifest: pd.DataFrame, test_fraction: float, folds: int, seed: int) -> dict:
    """Split internal patients into test + folds; every part must hold both classes."""
    role = manifest["cohort"].map(cohort_role)  # `external:<name>` cohorts are external too (issue 12)
    internal = manifest[role == "internal"].sort_values("patient_id")
    external = manifest[role == "external"].sort_values("patient_id")
    pids = internal["patient_id"].astype(str).to_numpy()
    labels = internal["lge"].astype(float).astype(int).to_numpy()
    counts = {c: int((labels == c).sum()) for c in (0, 1)}
    need = folds + 1
    if min(counts.values()) < need:
        raise CinescarError(f"the internal cohort has {counts[1]} LGE+ and {counts[0]} LGE- patients; at least "
                            f"{need} of each are needed for a test set and {folds} folds that all hold both classes")
    dev, test = train_test_split(pids, test_size=test_fraction, stratify=labels, random_state=seed)
    dev_labels = internal.set_index("patient_id").loc[dev, "lge"].astype(float).astype(int).to_numpy()
    if len(set(internal.set_index("patient_id").loc[test, "lge"].astype(float).astype(int))) < 2:
        raise CinescarError("the internal test set would hold only one class; raise splits.test_fraction")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_list = []
    for k, (tr, va) in enumerate(skf.split(dev, dev_labels)):
        if len(set(dev_labels[va])) < 2 or len(set(dev_labels[tr])) < 2:
            raise CinescarError(f"fold {k} would hold only one class; use fewer folds or more patients")
        fold_list.append({"fold": k, "train": sorted(dev[tr].tolist()), "val": sorted(dev[va].tolist())})
    return {"seed": seed, "test_fraction": test_fraction, "test": sorted(test.tolist()),
            "external": external["patient_id"].astype(str).tolist(), "folds": fold_list}


def check_disjoint(splits: dict) -> None:
    """No patient in two roles: test, external and each fold's train/val are disjoint."""
    test, ext = set(splits["test"]), set(splits["external"])
    if test & ext:
        raise CinescarError(f"patients in both test and external: {sorted(test & ext)[:5]}")
    for f in splits["folds"]:
        tr, va = set(f["train"]), set(f["val"])
        for a, b, name in ((tr, va, "train/val"), (tr, test, "train/test"), (va, test, "val/test"),
                           (tr, ext, "train/external"), (va, ext, "val/external")):
            if a & b:
                raise CinescarError(f"fold {f['fold']}: patients in {name}: {sorted(a & b)[:5]}")


def save_splits(splits: dict, path: str | Path) -> None:
    check_disjoint(splits)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(splits, indent=1))


def load_splits(path: str | Path = "results/splits/splits.json") -> dict:
    splits = json.loads(Path(path).read_text())
    check_disjoint(splits)
    return splits


def fold_images(index: pd.DataFrame, splits: dict, fold: int) -> dict[str, pd.DataFrame]:
    """The images of each role for one fold (architecture.md, "Roles of images")."""
    f = next((x for x in splits["folds"] if int(x["fold"]) == int(fold)), None)
    if f is None:
        raise CinescarError(f"fold {fold} is not in the splits (folds: {[x['fold'] for x in splits['folds']]})")
    pid = index["patient_id"].astype(str)
    dev = index["dev_selected"].astype(bool)
    return {
        "train": index[pid.isin(f["train"]) & dev],
        "val": index[pid.isin(f["val"]) & dev],
        "val_all": index[pid.isin(f["val"])],
        "test": index[pid.isin(splits["test"])],
        "external": index[pid.isin(splits["external"])],
    }
