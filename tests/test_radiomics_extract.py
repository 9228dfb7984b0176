"""pyradiomics extraction on tiny synthetic slices: feature set, failures, per-centre files, gathering."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinescar.errors import CinescarError
from cinescar.radiomics.extract import (
    chunk_rows,
    extract_center,
    extract_chunk,
    extract_images,
    extraction_chunks,
    feature_names,
    gather_features,
)

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "radiomics.yaml"
SIZE = 48


def ring_slices(n: int, seed: int = 0, rough: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """n slices in [0, 1]: a myocardial ring on noise; `rough` adds pixel-scale texture inside the ring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(yy - SIZE / 2, xx - SIZE / 2)
    ring = (r >= 8) & (r < 14)
    images = 0.3 + 0.05 * rng.standard_normal((n, SIZE, SIZE))
    images[:, r < 8] += 0.4
    images[:, ring] += 0.15 * rng.standard_normal((n, int(ring.sum()))) if rough else 0.1
    masks = np.repeat(ring[None].astype(np.uint8), n, axis=0)
    return np.clip(images, 0, 1).astype(np.float32), masks


@pytest.fixture(scope="module")
def names() -> list[str]:
    return feature_names(PARAMS)


def test_feature_set_is_the_documented_2d_set(names):
    # 10 image types x 93 grey-level features + 9 shape2D (docs/radiomics.md: 939, not the paper's 944)
    assert len(names) == 939 == len(set(names))
    by_type = Counter(n.split("_")[0] for n in names)
    assert by_type == {"original": 102, "gradient": 93, "logarithm": 93, "square": 93, "squareroot": 93,
                       "exponential": 93, "wavelet-LH": 93, "wavelet-HL": 93, "wavelet-HH": 93, "wavelet-LL": 93}
    assert sum(n.startswith("original_shape2D_") for n in names) == 9
    assert not any(n.startswith("diagnostics_") for n in names)
    assert feature_names(PARAMS) == names  # stable between calls


def test_features_are_finite_and_ordered(names):
    images, masks = ring_slices(2)
    result = extract_images(images, masks, ["A_ED_00", "A_ED_01"], PARAMS)
    assert list(result.features.columns) == ["image_id", *names]
    assert result.features["image_id"].tolist() == ["A_ED_00", "A_ED_01"]
    assert np.isfinite(result.features[names].to_numpy()).all()
    assert result.failures.empty
    # the exponential filter is informative (it would be a constant image without pyradiomics' normalisation)
    assert (result.features["exponential_firstorder_InterquartileRange"] > 0).all()
    # shape is the mask's: identical masks, identical area
    assert result.features["original_shape2D_PixelSurface"].nunique() == 1


def test_bad_images_are_reported_not_fatal(names):
    images, masks = ring_slices(4)
    masks[1] = 0  # empty mask
    masks[2] = 0
    masks[2, 5, 5:8] = 1  # 3 pixels in a row: one-dimensional and below minimumROISize
    masks[3] = 0
    masks[3, 10:12, 10] = 1
    masks[3, 10, 11] = 1  # 3 pixels, two-dimensional, below minimumROISize
    ids = ["P_ED_00", "P_ED_01", "P_ED_02", "P_ED_03"]
    result = extract_images(images, masks, ids, PARAMS)
    assert result.features["image_id"].tolist() == ids  # every image keeps its row
    assert result.failures["image_id"].tolist() == ids[1:]
    assert (result.failures["error"] == "ValueError").all()
    assert result.failures["message"].str.len().gt(0).all()
    assert (result.failures["n_nonfinite"] == len(names)).all()
    assert result.features.loc[1:, names].isna().all().all()
    assert np.isfinite(result.features.loc[0, names].to_numpy(float)).all()


def test_process_pool_gives_identical_features():
    images, masks = ring_slices(3, seed=1)
    masks[2] = 0
    ids = ["Q_ES_00", "Q_ES_01", "Q_ES_02"]
    single = extract_images(images, masks, ids, PARAMS, processes=1)
    pooled = extract_images(images, masks, ids, PARAMS, processes=2)
    pd.testing.assert_frame_equal(single.features, pooled.features)
    pd.testing.assert_frame_equal(single.failures, pooled.failures)


def test_mismatched_inputs_and_bad_params_raise(tmp_path):
    images, masks = ring_slices(2)
    with pytest.raises(CinescarError, match="do not match"):
        extract_images(images, masks[:1], ["a", "b"], PARAMS)
    with pytest.raises(CinescarError, match="duplicate"):
        extract_images(images, masks, ["a", "a"], PARAMS)
    with pytest.raises(CinescarError, match="not found"):
        extract_images(images, masks, ["a", "b"], tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binCount: -3\n")
    with pytest.raises(CinescarError, match="invalid"):
        extract_images(images, masks, ["a", "b"], bad)


def _write_center(root: Path, slug: str, ids: list[str], images: np.ndarray, masks: np.ndarray) -> Path:
    folder = root / "centers" / slug
    folder.mkdir(parents=True)
    np.save(folder / "images.npy", images)
    np.save(folder / "masks.npy", masks)
    # rows deliberately not in array order: extraction must follow `row`
    order = np.arange(len(ids))[::-1]
    index = pd.DataFrame({"image_id": [ids[i] for i in order], "patient_id": [i.split("_")[0] for i in ids],
                          "center_slug": slug, "row": order})
    index.to_parquet(folder / "index.parquet", index=False)
    return folder / "index.parquet"


def test_extract_center_and_gather(tmp_path, names):
    store = tmp_path / "results" / "preprocess"
    images, masks = ring_slices(3, seed=2)
    masks[0] = 0
    ids_a = ["A1_ED_00", "A1_ED_01", "A1_ED_02"]
    idx_a = _write_center(store, "centre-a", ids_a, images, masks)
    idx_b = _write_center(store, "centre-b", ["B1_ES_03"], *ring_slices(1, seed=3))
    out = tmp_path / "results" / "radiomics"
    res_a = extract_center(idx_a, PARAMS, out / "centers" / "centre-a.parquet",
                           out / "centers" / "centre-a.failures.csv")
    extract_center(idx_b, PARAMS, out / "centers" / "centre-b.parquet", out / "centers" / "centre-b.failures.csv")
    assert res_a.features["image_id"].tolist() == ids_a[::-1]
    # row 2 of the arrays is the first index row: its features equal a direct extraction of that array row
    direct = extract_images(images[2:3], masks[2:3], ["x"], PARAMS).features
    np.testing.assert_allclose(res_a.features.loc[0, names].to_numpy(float), direct.loc[0, names].to_numpy(float))

    gathered = gather_features([out / "centers" / "centre-a.parquet", out / "centers" / "centre-b.parquet"],
                               [out / "centers" / "centre-a.failures.csv", out / "centers" / "centre-b.failures.csv"],
                               out / "features.parquet", out / "failures.csv")
    table = pd.read_parquet(out / "features.parquet")
    assert sorted(table["image_id"]) == sorted(ids_a + ["B1_ES_03"])
    failures = pd.read_csv(out / "failures.csv")
    assert failures["image_id"].tolist() == ["A1_ED_00"]
    assert len(gathered.failures) == 1

    with pytest.raises(CinescarError, match="more than one centre"):
        gather_features([out / "centers" / "centre-a.parquet"] * 2, [], tmp_path / "f.parquet", tmp_path / "f.csv")


def test_chunk_rows_partition_the_index_in_order():
    for n_images in (0, 1, 7, 300, 301, 1000):
        for n_chunks in (1, 2, 3, 7, 11):
            rows = [chunk_rows(n_images, n_chunks, c) for c in range(n_chunks)]
            assert [i for r in rows for i in r] == list(range(n_images))  # contiguous, in order, complete
            assert max(len(r) for r in rows) - min(len(r) for r in rows) <= 1  # near-equal
    with pytest.raises(CinescarError, match="does not exist"):
        chunk_rows(10, 3, 3)


def test_chunked_extraction_is_bit_for_bit_one_job_per_centre(tmp_path):
    """The workflow extracts chunks of a centre's images in separate jobs; gathered in order they must give
    exactly the table one job over the whole centre gives (values, order, dtypes, failures)."""
    store = tmp_path / "results" / "preprocess"
    images, masks = ring_slices(5, seed=4, rough=True)
    masks[3] = 0  # one failed image inside a chunk
    ids = [f"C1_ED_{i:02d}" for i in range(5)]
    index_path = _write_center(store, "centre-c", ids, images, masks)
    out = tmp_path / "results" / "radiomics"
    whole = extract_center(index_path, PARAMS, out / "whole.parquet", out / "whole.failures.csv")
    n_chunks = 7  # more chunks than images: two chunks are empty and must not disturb the gather
    parts = [(out / "chunks" / f"{c}-of-{n_chunks}.parquet", out / "chunks" / f"{c}-of-{n_chunks}.failures.csv")
             for c in range(n_chunks)]
    for c, (feat, fail) in enumerate(parts):
        extract_chunk(index_path, PARAMS, c, n_chunks, feat, fail)
    assert len(pd.read_parquet(parts[-1][0])) == 0
    gathered = gather_features([f for f, _ in parts], [f for _, f in parts], out / "features.parquet",
                               out / "failures.csv")
    pd.testing.assert_frame_equal(gathered.features, whole.features, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "features.parquet"), pd.read_parquet(out / "whole.parquet"),
                                  check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "failures.csv"), pd.read_csv(out / "whole.failures.csv"))
    assert gathered.failures["image_id"].tolist() == [ids[3]]


def test_extraction_chunks_from_the_validation_report(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("patient_id,center\nP1,Centre A\nP2,Centre A\nP3,Rome (IT)\n")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"slices_per_phase": {"P1:ED": 10, "P1:ES": 10, "P2:ED": 6, "P2:ES": 6,
                                                       "P3:ED": 2, "P3:ES": 2}}))
    assert extraction_chunks(manifest, report, 300) == {"centre-a": 1, "rome-it": 1}
    assert extraction_chunks(manifest, report, 10) == {"centre-a": 4, "rome-it": 1}  # 32 slices -> 4 chunks
    assert extraction_chunks(manifest, report, 32) == {"centre-a": 1, "rome-it": 1}
    with pytest.raises(CinescarError, match="extract_chunk_images"):
        extraction_chunks(manifest, report, 0)


_EXTRACT_IN_A_FRESH_PROCESS = """
import sys, numpy as np
from cinescar.radiomics.extract import extract_images
data = np.load(sys.argv[1])
r = extract_images(data["images"], data["masks"], ["R_ED_00", "R_ED_01"], sys.argv[2])
np.save(sys.argv[3], r.features.drop(columns="image_id").to_numpy(float))
"""


def test_features_are_identical_from_one_process_to_the_next(tmp_path):
    """ITK splits a filter's work over threads depending on the machine; the same slice gave features up to
    2.4e-7 apart between two jobs before extraction pinned ITK to one thread. Two fresh processes, while a
    third keeps the other core busy, must give the same bytes."""
    import subprocess
    import sys

    import SimpleITK as sitk

    from cinescar.radiomics.extract import make_extractor

    make_extractor(PARAMS)
    assert sitk.ProcessObject_GetGlobalDefaultNumberOfThreads() == 1
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot(yy - 64, xx - 64)
    rng = np.random.default_rng(3)
    images = np.clip(0.3 + 0.1 * rng.standard_normal((2, 128, 128)) + 0.3 * (r < 20), 0, 1).astype(np.float32)
    masks = np.repeat(((r >= 20) & (r < 30))[None].astype(np.uint8), 2, axis=0)
    np.savez(tmp_path / "slices.npz", images=images, masks=masks)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        outs = []
        for k in range(2):
            out = tmp_path / f"features{k}.npy"
            subprocess.run([sys.executable, "-c", _EXTRACT_IN_A_FRESH_PROCESS, str(tmp_path / "slices.npz"),
                            str(PARAMS), str(out)], check=True, timeout=300)
            outs.append(np.load(out))
    finally:
        busy.kill()
    assert outs[0].tobytes() == outs[1].tobytes()


def test_one_extractor_for_the_probe_and_the_images_changes_no_bit():
    """extract_images builds one extractor for the feature-name probe and the images (issue 27: each job read and
    validated the parameter file twice); every image's features are those of a fresh extractor, bit for bit."""
    from cinescar.radiomics.extract import extract_image, make_extractor

    images, masks = ring_slices(3, seed=5, rough=True)
    result = extract_images(images, masks, ["S_ED_00", "S_ED_01", "S_ED_02"], PARAMS)
    for i in range(3):
        fresh = extract_image(make_extractor(PARAMS), images[i], masks[i])
        assert list(fresh) == list(result.features.columns[1:])
        assert np.array(list(fresh.values()), np.float64).tobytes() == \
            result.features.iloc[i, 1:].to_numpy(np.float64).tobytes()


def test_an_extraction_job_does_not_import_the_model():
    """The extraction job imports `cinescar.radiomics.extract` only; the package used to import the model too
    (scikit-learn, scipy.stats: ~1 CPU-s of each job's start-up, issue 27)."""
    import os
    import subprocess
    import sys

    code = ("import sys; import cinescar.radiomics.extract, cinescar.logs; "
            "print(sorted(m for m in ('sklearn', 'scipy.stats', 'cinescar.radiomics.model') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         timeout=120)
    assert out.stdout.strip() == "[]"
    from cinescar import radiomics

    assert radiomics.RadiomicsModel.__module__ == "cinescar.radiomics.model"  # the package's names still resolve
