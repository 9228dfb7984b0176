"""Splits are patient-wise and disjoint; only development patients are ever in folds."""

from __future__ import annotations

import pandas as pd
import pytest

from cinescar.errors import CinescarError
from cinescar.cohort.splits import check_disjoint, fold_images, load_splits, make_splits, save_splits


def _manifest(n_int=60, n_ext=10):
    rows = [{"patient_id": f"P{i:03d}", "cohort": "internal", "lge": int(i % 3 == 0)} for i in range(n_int)]
    rows += [{"patient_id": f"E{i:03d}", "cohort": "external", "lge": i % 2} for i in range(n_ext)]
    return pd.DataFrame(rows)


def test_no_patient_in_two_roles(tmp_path):
    splits = make_splits(_manifest(), 0.21, 5, seed=3)
    save_splits(splits, tmp_path / "s.json")
    splits = load_splits(tmp_path / "s.json")
    test, ext = set(splits["test"]), set(splits["external"])
    assert not test & ext
    vals = [set(f["val"]) for f in splits["folds"]]
    assert set().union(*vals) | test == {f"P{i:03d}" for i in range(60)}
    assert sum(len(v) for v in vals) == len(set().union(*vals))  # each dev patient validates exactly once
    for f in splits["folds"]:
        assert not set(f["train"]) & set(f["val"]) and not (set(f["train"]) | set(f["val"])) & (test | ext)
    assert 0.15 < len(test) / 60 < 0.27


def test_splits_are_deterministic_and_seeded():
    assert make_splits(_manifest(), 0.21, 5, 1) == make_splits(_manifest(), 0.21, 5, 1)
    assert make_splits(_manifest(), 0.21, 5, 1)["test"] != make_splits(_manifest(), 0.21, 5, 2)["test"]


def test_each_part_holds_both_classes():
    splits = make_splits(_manifest(), 0.21, 5, 0)
    m = _manifest().set_index("patient_id")
    for f in splits["folds"]:
        assert set(m.loc[f["val"], "lge"]) == {0, 1}
    assert set(m.loc[splits["test"], "lge"]) == {0, 1}


def test_too_few_positives_is_a_clear_error():
    m = _manifest()
    m.loc[m.patient_id.isin([f"P{i:03d}" for i in range(6, 60)]), "lge"] = 0
    with pytest.raises(CinescarError, match="LGE\\+"):
        make_splits(m, 0.21, 5, 0)


def test_check_disjoint_catches_overlap():
    splits = make_splits(_manifest(), 0.21, 5, 0)
    splits["folds"][0]["train"].append(splits["test"][0])
    with pytest.raises(CinescarError, match="train/test"):
        check_disjoint(splits)


def test_fold_images_roles():
    splits = make_splits(_manifest(), 0.21, 5, 0)
    index = pd.DataFrame([{"image_id": f"{p}_{z}", "patient_id": p, "dev_selected": z < 2}
                          for p in _manifest().patient_id for z in range(4)])
    roles = fold_images(index, splits, 2)
    assert roles["train"]["dev_selected"].all() and roles["val"]["dev_selected"].all()
    assert len(roles["val_all"]) == 2 * len(roles["val"])
    assert set(roles["test"].patient_id) == set(splits["test"])
    assert set(roles["external"].patient_id) == set(splits["external"])
    with pytest.raises(CinescarError):
        fold_images(index, splits, 9)
