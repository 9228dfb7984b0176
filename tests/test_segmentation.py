"""The segmentation stage (issue 22): geometry round trip, cross-fitting without leakage, training and
prediction on a tiny cohort, QC flags, and masks becoming optional in the cohort contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cinescar.cohort.contract import geometry_mismatch, mask_source, read_manifest
from cinescar.cohort.validate import CohortValidationError, validate_cohort
from cinescar.config import load_config
from cinescar.cohort.splits import make_splits
from cinescar.segmentation.crossfit import ENSEMBLE, crossfit_assignment, predicting_network
from cinescar.segmentation.field import field_to_labels, labels_to_field, stack_to_field
from cinescar.segmentation.labels import LV_CAVITY, MYOCARDIUM, reference_labels
from cinescar.segmentation.qc import stack_flags
from cinescar.segmentation.run import crossfit_job, gather_job, predict_job, train_job


def _ring(shape=(3, 90, 110), inner=12, outer=20, spacing=(1.3, 1.3)):
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    r = np.hypot((yy - shape[1] / 2) * spacing[1], (xx - shape[2] / 2 - 6) * spacing[0])
    return np.repeat(((r >= inner) & (r < outer))[None], shape[0], 0).astype(np.uint8)


def test_reference_labels_put_the_cavity_inside_a_closed_ring_only():
    ring = _ring()[0]
    labels = reference_labels(ring[None])[0]
    assert (labels == MYOCARDIUM).sum() == ring.sum()
    assert (labels == LV_CAVITY).sum() > 0 and not (labels == LV_CAVITY)[0, 0]
    opened = ring.copy()
    opened[:, ring.shape[1] // 2 + 5:] = 0  # a C shape: no closed ring, no cavity
    assert (reference_labels(opened[None]) == LV_CAVITY).sum() == 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.3, 1.3), (0.8, 0.8)])
def test_labels_survive_the_round_trip_through_the_field(spacing):
    labels = reference_labels(_ring(spacing=spacing))
    fields, geometry = stack_to_field(np.random.default_rng(0).random(labels.shape), spacing, size=128)
    assert fields.shape == (3, 128, 128) and 0 <= fields.min() and fields.max() <= 1
    back = field_to_labels(labels_to_field(labels, geometry), geometry)
    assert back.shape == labels.shape
    assert (back == labels).mean() > 0.99 if spacing != (1.0, 1.0) else (back == labels).all()


def _splits(n_dev=20, n_test=6, n_ext=4):
    pids = [f"P{i:03d}" for i in range(n_dev)]
    return {"seed": 1, "test": [f"T{i}" for i in range(n_test)], "external": [f"X{i}" for i in range(n_ext)],
            "folds": [{"fold": f, "train": [p for j, p in enumerate(pids) if j % 5 != f],
                       "val": [p for j, p in enumerate(pids) if j % 5 == f]} for f in range(5)]}


@pytest.mark.parametrize("k", [2, 3])
def test_no_predicted_mask_comes_from_a_network_that_saw_the_patient(k):
    splits = _splits()
    a = crossfit_assignment(splits, k, seed=3, extra=["extra0/A", "extra0/B"])
    held_out = set(splits["test"]) | set(splits["external"])
    predicted = [p for f in a["folds"] for p in f["predict"]]
    assert sorted(predicted) == sorted({p for f in splits["folds"] for p in f["train"] + f["val"]})
    assert len(predicted) == len(set(predicted))  # each development patient predicted once
    for f in a["folds"]:
        assert not set(f["train"]) & set(f["predict"])
        assert not set(f["train"]) & held_out  # test and external never train a network
        assert {"extra0/A", "extra0/B"} <= set(f["train"])
    who = predicting_network(a)
    assert {who[p] for p in held_out} == {ENSEMBLE}
    assert crossfit_assignment(splits, k, seed=3, extra=["extra0/A", "extra0/B"]) == a  # seeded


def test_held_out_patients_in_extra_cohorts_are_refused():
    splits = _splits()
    with pytest.raises(ValueError, match="held out"):
        crossfit_assignment(splits, 2, seed=0, extra=[splits["test"][0]])
    with pytest.raises(ValueError, match="held out"):  # as the job keys them: extra{i}/{patient_id}
        crossfit_assignment(splits, 2, seed=0, extra=[f"extra0/{splits['external'][0]}"])


def test_qc_flags_what_no_heart_looks_like():
    qc = load_config()["segmentation"]["qc"]
    good = reference_labels(_ring())
    conf = np.ones(good.shape, np.float32)
    assert stack_flags(good, conf, qc) == []
    two = good.copy()
    two[:, :, :8] = MYOCARDIUM  # a second sizeable piece
    assert "several_components" in stack_flags(two, conf, qc)
    bare = good.copy()
    bare[bare == MYOCARDIUM] = 0
    assert "cavity_without_myocardium" in stack_flags(bare, conf, qc) or stack_flags(bare, conf, qc) == [
        "no_myocardium"]
    assert stack_flags(np.zeros_like(good), conf, qc) == ["no_myocardium"]
    assert "low_confidence" in stack_flags(good, conf * 0.5, qc)


def test_mask_source_policy():
    assert mask_source("auto", True) == "manual" and mask_source("auto", False) == "predicted"
    assert mask_source("predicted", True) == "predicted" and mask_source("manual", True) == "manual"
    with pytest.raises(ValueError):
        mask_source("whatever", True)


def _drop_masks(cohort: Path, pids: list[str] | None = None, columns: bool = False) -> None:
    df = pd.read_csv(cohort / "manifest.csv", dtype=str)
    if columns:
        df = df.drop(columns=["ed_mask", "es_mask"])
    else:
        for col in ("ed_mask", "es_mask"):
            df.loc[df["patient_id"].isin(pids), col] = ""
    df.to_csv(cohort / "manifest.csv", index=False)


def test_a_cohort_without_mask_columns_validates_and_manual_policy_refuses_it(tiny_cohort):
    _drop_masks(tiny_cohort, columns=True)
    cfg = load_config()
    report = validate_cohort(tiny_cohort, cfg=cfg)
    assert report.patients_without_masks == report.n_patients
    assert read_manifest(tiny_cohort)["ed_mask"].isna().all()
    cfg["segmentation"]["masks"] = "manual"
    with pytest.raises(CohortValidationError, match="empty ed_mask path.*segmentation.masks"):
        validate_cohort(tiny_cohort, cfg=cfg)


def test_an_image_without_a_mask_is_still_checked(tiny_cohort):
    _drop_masks(tiny_cohort, ["T000"])
    img = sitk.ReadImage(str(tiny_cohort / "images" / "T000_ED.nii.gz"))
    arr = sitk.GetArrayFromImage(img) * 0 + 7
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(tiny_cohort / "images" / "T000_ED.nii.gz"))
    with pytest.raises(CohortValidationError, match="T000.*image is constant"):
        validate_cohort(tiny_cohort, cfg=load_config())


SMOKE = {"channels": [4, 8, 16], "max_epochs": 4, "crop": 32, "batch_size": 8, "patience": 4,
         "learning_rate": 0.01}


def test_train_and_predict_on_a_tiny_cohort_without_leakage(tiny_cohort, tmp_path, monkeypatch):
    """Two cross-fitted networks train on rings; each development patient is segmented by the network that did
    not see it, held-out patients by both; masks come back in the image's own geometry."""
    monkeypatch.chdir(tmp_path)  # MLflow's records land in the test's folder
    cfg = load_config(overrides={"segmentation": SMOKE, "preprocessing": {"size": 64}})
    manifest = read_manifest(tiny_cohort)
    splits = make_splits(manifest, 0.21, 3, 7)
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    params = {"cfg": cfg}
    out = tmp_path / "seg"
    a = crossfit_job({"splits": str(tmp_path / "splits.json")}, {"crossfit": str(out / "crossfit.json")}, params)
    metas = []
    for k in (0, 1):
        meta = train_job({"manifest": str(tiny_cohort / "manifest.csv"), "crossfit": str(out / "crossfit.json")},
                         {"model": str(out / f"fold{k}/model.pt"), "meta": str(out / f"fold{k}/model.json")},
                         params, k)
        metas.append(meta)
        from cinescar.segmentation.run import patients_hash

        assert meta["training_patients_sha256"] == patients_hash(a["folds"][k]["train"])
    tables = []
    for center in sorted({c for c in manifest["center"].map(lambda c: c.lower().replace(" ", "-"))}):
        table = predict_job({"manifest": str(tiny_cohort / "manifest.csv"), "crossfit": str(out / "crossfit.json"),
                             "models": [str(out / f"fold{k}/model.pt") for k in (0, 1)],
                             "metas": [str(out / f"fold{k}/model.json") for k in (0, 1)]},
                            {"masks": str(out / "masks" / center), "table": str(out / f"centers/{center}.parquet")},
                            params, center)
        tables.append(str(out / f"centers/{center}.parquet"))
        who = predicting_network(a)
        for _, r in table.iterrows():
            assert r["network"] == who[r["patient_id"]]
            if r["network"] != ENSEMBLE:
                k = int(r["network"][-1])
                assert r["patient_id"] not in a["folds"][k]["train"]
            mask = sitk.ReadImage(str(out / "masks" / center / f"{r['patient_id']}_{r['phase']}.nii.gz"))
            img = sitk.ReadImage(str(tiny_cohort / "images" / f"{r['patient_id']}_{r['phase']}.nii.gz"))
            assert geometry_mismatch(img, mask) is None
            assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}
        assert table["dice_myocardium"].notna().all()
    summary = {k: str(tmp_path / f"{k}.csv") for k in ("per_stack", "overlap", "agreement", "qc")}
    gather_job({"tables": tables}, summary, params)
    overlap = pd.read_csv(summary["overlap"])
    assert {"development", "test", "external"} <= set(overlap["role"])
    assert set(overlap["class"]) == {"myocardium", "lv_cavity"}
    assert pd.read_csv(summary["agreement"])["measure"].str.contains("LVEF").any()
