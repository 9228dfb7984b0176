"""benchmarks/fusion_stacking.py's inner folds: the out-of-fold DL values it stacks must come from CNNs that
never saw the patient, nor any validation, internal-test or external patient (issue 13 item 7)."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinescar.errors import CinescarError
from cinescar.cohort.splits import fold_images, make_splits

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fusion_stacking.py"


@pytest.fixture(scope="module")
def stacking():
    spec = importlib.util.spec_from_file_location("fusion_stacking", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cohort(n_internal: int = 40, n_pos: int = 14, n_external: int = 6) -> tuple[pd.DataFrame, dict]:
    pids = [f"P{i:03d}" for i in range(n_internal)] + [f"X{i:03d}" for i in range(n_external)]
    manifest = pd.DataFrame({"patient_id": pids,
                             "cohort": ["internal"] * n_internal + ["external"] * n_external,
                             "lge": [int(i < n_pos) for i in range(n_internal)] + [i % 2 for i in range(n_external)]})
    splits = make_splits(manifest, test_fraction=0.2, folds=5, seed=3)
    index = pd.DataFrame([{"image_id": f"{p}_ED_{s:02d}", "patient_id": p, "lge": lge, "dev_selected": s < 3}
                          for p, lge in zip(manifest["patient_id"], manifest["lge"]) for s in range(4)])
    return index, splits


def test_inner_parts_split_T_only(stacking):
    index, splits = cohort()
    outside = set(splits["test"]) | set(splits["external"])
    for f in splits["folds"]:
        T, V = set(f["train"]), set(f["val"])
        inner = stacking.inner_splits(index, splits, f["fold"], 3, seed=42 + f["fold"])
        held = [p for part in inner["folds"] for p in part["val"]]
        assert sorted(held) == sorted(T)  # every training patient held out exactly once
        labels = index.groupby("patient_id")["lge"].max()
        for part in inner["folds"]:
            assert not set(part["train"]) & set(part["val"])
            assert set(part["train"]) | set(part["val"]) == T
            assert set(labels[part["val"]]) == {0, 1}
            roles = fold_images(index, inner, part["fold"])
            seen = set(roles["train"]["patient_id"]) | set(roles["val"]["patient_id"])
            assert seen <= T and not seen & (V | outside)  # the inner CNN's images: T's patients only
            assert roles["test"].empty and roles["external"].empty


def test_inner_parts_refuse_a_one_class_part(stacking):
    index, splits = cohort(n_internal=40, n_pos=6)  # ~4 LGE+ training patients per fold: 5 parts cannot all hold one
    with pytest.raises(CinescarError, match="one class"):
        stacking.inner_splits(index, splits, 0, 5, seed=1)
    assert np.all([len(p["val"]) for p in stacking.inner_splits(index, splits, 0, 2, seed=1)["folds"]])
