"""Preprocessing: 1 x 1 mm, 256 x 256, [0, 1], development selection, the store round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinescar.config import load_config
from cinescar.preprocessing.images import (PreprocessSettings, crop_center, normalise_intensity, place_in_field,
                                           preprocess_stack, resample_slice)
from cinescar.preprocessing.selection import development_selection, mid_ventricular
from cinescar.preprocessing.store import gather_index, load_arrays, preprocess_center


def test_resample_to_1mm_changes_size_by_spacing():
    arr = np.random.default_rng(0).random((100, 80)).astype(np.float32)
    out = resample_slice(arr, (0.5, 2.0), 1.0, 1)  # x spacing 0.5 mm (cols), y spacing 2 mm (rows)
    assert out.shape == (200, 40)


def test_place_in_field_centres_and_pads():
    arr = np.zeros((10, 10), np.float32)
    arr[2, 3] = 1
    out = place_in_field(arr, (2, 3), 8)
    assert out.shape == (8, 8) and out[4, 4] == 1 and out.sum() == 1


def test_normalise_is_robust_to_a_hot_pixel():
    arr = np.linspace(0, 100, 10000).reshape(100, 100).astype(np.float32)
    arr[0, 0] = 1e6
    out = normalise_intensity(arr, (0.5, 99.5))
    assert out.min() == 0 and out.max() == 1 and 0.45 < np.median(out) < 0.55


def test_preprocess_stack_skips_slices_without_myocardium_and_centres_on_it():
    img = np.random.default_rng(1).random((4, 60, 60)).astype(np.float32) * 100
    msk = np.zeros((4, 60, 60), np.uint8)
    msk[1:3, 10:20, 40:50] = 1  # myocardium off-centre, on slices 1 and 2 only
    ims, mks, kept = preprocess_stack(img, msk, (1.0, 1.0), PreprocessSettings(size=64))
    assert kept == [1, 2]
    assert ims.shape == (2, 64, 64) and ims.min() >= 0 and ims.max() <= 1
    rows, cols = np.nonzero(mks[0])
    assert abs(rows.mean() - 32) < 1.5 and abs(cols.mean() - 32) < 1.5
    assert crop_center(ims, 32).shape == (2, 32, 32)


def test_mid_ventricular_takes_the_middle():
    assert mid_ventricular(list(range(10)), 6) == {2, 3, 4, 5, 6, 7}
    assert mid_ventricular([4, 5], 6) == {4, 5}


def test_development_selection_rules():
    rows = []
    for pid, lge, scar in (("N1", 0, None), ("P1", 1, {3}), ("P2", 1, None)):
        for z in range(10):
            rows.append({"patient_id": pid, "phase": "ED", "slice": z, "lge": lge,
                         "scar_slice": (z in scar) if scar is not None else pd.NA})
    index = pd.DataFrame(rows)
    index["scar_slice"] = index["scar_slice"].astype("boolean")
    sel = development_selection(index, 6)
    assert sel[index.patient_id == "N1"].sum() == 6
    assert index[sel & (index.patient_id == "P1")]["slice"].tolist() == [3]
    # no per-slice reading: the same mid-ventricular slices as an LGE- patient (slice position is no label cue)
    assert index[sel & (index.patient_id == "P2")]["slice"].tolist() == index[sel & (index.patient_id == "N1")][
        "slice"].tolist()


def test_store_round_trip(tiny_cohort, tmp_path):
    cfg = load_config()
    paths = []
    for slug in ("centre-a", "centre-b", "ext"):
        preprocess_center(tiny_cohort, slug, tmp_path / "centers" / slug, cfg)
        paths.append(tmp_path / "centers" / slug / "index.parquet")
    index = gather_index(paths, tmp_path / "index.parquet")
    assert index["image_id"].is_unique
    assert set(index["phase"]) == {"ED", "ES"}
    sample = index.sample(12, random_state=0)
    images, masks = load_arrays(sample, tmp_path)
    assert images.shape == (12, 256, 256) and images.dtype == np.float32
    assert masks.dtype == np.uint8 and all(m.sum() > 0 for m in masks)
    # the same image read directly from its centre's array
    first = sample.iloc[0]
    direct = np.load(tmp_path / "centers" / first.center_slug / "images.npy")[first.row]
    np.testing.assert_array_equal(images[0], direct)
