"""pyradiomics feature extraction on preprocessed 2D cine slices (paper Methods, "Radiomics feature extraction").

Every image is handed to pyradiomics as a *true* 2D SimpleITK image (256 x 256, spacing 1 x 1 mm) with its
myocardium mask; what pyradiomics computes (image types, feature classes, binning) is decided entirely by a
parameter file in pyradiomics' own format (`config/radiomics.yaml`), so a user can swap in their own.

A failure on one image never stops a run and is never silent: the image keeps a row of NaN features and gets a
row in the failures table (image id, error, message). pyradiomics itself turns an exception inside one feature
into NaN and only logs it, so non-finite values are reported as failures too. What happens to such images later
(imputation or exclusion) is the model's `failure_policy` (see `cinescar.radiomics.model`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cinescar.errors import CinescarError

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["image_id", "error", "message", "n_nonfinite"]
"""Columns of a failures table: which image, what went wrong, and how many features are NaN because of it."""



@dataclass
class ExtractionResult:
    """Features (`image_id` + one float column per feature, one row per input image) and failures."""

    features: pd.DataFrame
    failures: pd.DataFrame


def to_sitk_2d(array: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> sitk.Image:
    """A 2D SimpleITK image of `array` (rows, cols) with the given spacing.

    Why 2D and not a one-slice 3D volume: with a 3D image pyradiomics needs `force2D`, which changes what
    filters and texture matrices do (see docs/radiomics.md); a 2D image is exactly what the paper describes.
    """
    if array.ndim != 2:
        raise CinescarError(f"radiomics expects a 2D slice, got an array of shape {array.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def make_extractor(params_path: str | Path):
    """A pyradiomics `RadiomicsFeatureExtractor` configured by `params_path` (validated by pyradiomics)."""
    from radiomics import featureextractor

    # pyradiomics logs advice per image (binCount, symmetrical GLCM) and each failed feature with a traceback;
    # failures are reported by `extract_images` instead, once per image, so keep its logger quiet.
    logging.getLogger("radiomics").setLevel(logging.CRITICAL)
    logging.getLogger("pykwalify").setLevel(logging.WARNING)  # "validation.valid" on every extractor
    # ITK's filters (pyradiomics' wavelet, LoG, resampling) split an image over threads and the split depends
    # on the machine's load, so the same slice gave features up to 2.4e-7 apart from one process to the next
    # (measured on the default run's images). One ITK thread makes them identical; the parallelism is the
    # extraction jobs and their processes (`radiomics.extract_threads`), never ITK's. This process-wide
    # setting is ITK's only way to say it.
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    path = Path(params_path)
    if not path.is_file():
        raise CinescarError(f"pyradiomics parameter file not found: {path}")
    try:
        return featureextractor.RadiomicsFeatureExtractor(str(path))
    except Exception as exc:  # pykwalify SchemaError and friends: say which file is wrong
        raise CinescarError(f"pyradiomics parameter file {path} is invalid: {exc}") from None


def extract_image(extractor, image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """All features of one image as {name: float}; pyradiomics' diagnostics are dropped.

    Raises whatever pyradiomics raises (e.g. ValueError for an empty mask); `extract_images` turns that
    into a failure row.
    """
    result = extractor.execute(to_sitk_2d(image.astype(np.float32, copy=False)),
                               to_sitk_2d(mask.astype(np.uint8, copy=False)))
    return {name: float(value) for name, value in result.items() if not name.startswith("diagnostics_")}


def _probe_image(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic ring-shaped 'myocardium' (~1,500 px, like a real LV at 1 mm) on a textured background."""
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    mask = ((radius > 14) & (radius < 26)).astype(np.uint8)
    image = (0.5 + 0.25 * np.sin(xx / 2.0) * np.cos(yy / 3.0) + 0.2 * (xx + yy) / (2 * size)).astype(np.float32)
    return np.clip(image, 0.0, 1.0), mask


def feature_names(params_path: str | Path, extractor=None) -> list[str]:
    """The feature columns the parameter file produces, in pyradiomics' order.

    Computed once on a probe image so that the column set does not depend on which images of a centre
    happen to fail (a centre whose images all fail still gets the right columns). `extractor`, when given, is
    `make_extractor(params_path)` already built (pyradiomics keeps no state from one image to the next, so the
    probe changes nothing it computes afterwards; tests/test_radiomics_extract.py checks it bit for bit).
    """
    image, mask = _probe_image()
    extractor = make_extractor(params_path) if extractor is None else extractor
    try:
        return list(extract_image(extractor, image, mask))
    except Exception as exc:  # a settings problem, not an image problem: stop before extracting anything
        raise CinescarError(f"pyradiomics parameter file {params_path} fails on a plain ring-shaped test "
                            f"myocardium: {type(exc).__name__}: {exc}") from None


# -- worker state: one extractor per process, built once (building it re-reads and re-validates the YAML) --
_WORKER: dict = {}


def _init_worker(params_path: str) -> None:
    _WORKER["extractor"] = make_extractor(params_path)


def _extract_one(item: tuple[str, np.ndarray, np.ndarray]) -> tuple[str, dict[str, float] | None, str, str]:
    image_id, image, mask = item
    try:
        return image_id, extract_image(_WORKER["extractor"], image, mask), "", ""
    except Exception as exc:  # one bad image must not stop a centre: report it (see module docstring)
        return image_id, None, type(exc).__name__, " ".join(str(exc).split())


def extract_images(
    images: np.ndarray,
    masks: np.ndarray,
    image_ids: Sequence[str],
    params_path: str | Path,
    processes: int = 1,
) -> ExtractionResult:
    """Extract features of N images (N, H, W) with their masks; never raises because of one image.

    `processes > 1` uses a process pool (pyradiomics is single-threaded Python/C); results keep input order.
    """
    images = np.asarray(images)
    masks = np.asarray(masks)
    image_ids = [str(i) for i in image_ids]
    if images.shape != masks.shape or images.ndim != 3 or len(image_ids) != images.shape[0]:
        raise CinescarError(
            f"images {images.shape}, masks {masks.shape} and {len(image_ids)} image ids do not match")
    if len(set(image_ids)) != len(image_ids):
        raise CinescarError("duplicate image_id in the images to extract")
    items = ((image_ids[i], images[i], masks[i]) for i in range(len(image_ids)))

    started = time.perf_counter()
    if processes <= 1:
        _init_worker(str(params_path))  # one extractor for the probe and the images: the YAML is read once
        columns = feature_names(params_path, _WORKER["extractor"])
        outputs = [_extract_one(item) for item in items]
    else:
        columns = feature_names(params_path)
        with ProcessPoolExecutor(max_workers=processes, initializer=_init_worker,
                                 initargs=(str(params_path),)) as pool:
            outputs = list(pool.map(_extract_one, items, chunksize=4))
    elapsed = time.perf_counter() - started

    values = np.full((len(image_ids), len(columns)), np.nan, dtype=np.float64)
    failures = []
    for row, (image_id, feats, error, message) in enumerate(outputs):
        if feats is None:
            failures.append((image_id, error, message, len(columns)))
            continue
        vec = np.array([feats.get(c, np.nan) for c in columns], dtype=np.float64)
        bad = ~np.isfinite(vec)
        vec[bad] = np.nan  # inf -> NaN: one missing-value convention for the model's failure policy
        values[row] = vec
        if list(feats) != columns:
            missing = sorted(set(columns) - set(feats))
            failures.append((image_id, "FeatureSetMismatch",
                             f"features differ from the parameter file's set (missing e.g. {missing[:3]})",
                             int(bad.sum())))
        elif bad.any():
            names = [columns[j] for j in np.flatnonzero(bad)]
            failures.append((image_id, "NonFiniteFeatures",
                             f"{int(bad.sum())} non-finite feature(s), e.g. {', '.join(names[:3])}",
                             int(bad.sum())))

    features = pd.DataFrame(values, columns=columns)
    features.insert(0, "image_id", image_ids)
    failure_table = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
    n = len(image_ids)
    log.info("extracted %d features for %d images in %.1f s (%.3f s/image, %d process(es)); %d failure(s)",
             len(columns), n, elapsed, elapsed / max(n, 1), processes, len(failure_table))
    for rec in failure_table.itertuples():
        log.warning("radiomics failure on image %s: %s: %s", rec.image_id, rec.error, rec.message)
    return ExtractionResult(features=features, failures=failure_table)


def extract_center(
    index_path: str | Path,
    params_path: str | Path,
    features_out: str | Path,
    failures_out: str | Path,
    processes: int = 1,
) -> ExtractionResult:
    """Extract one centre's images and write features (Parquet) and failures (CSV).

    `index_path` is the centre's `results/preprocess/centers/{center}/index.parquet`; its arrays are read with
    `cinescar.preprocessing.store.load_arrays` from the store root two levels up.
    """
    from cinescar.preprocessing.store import load_arrays, load_index

    index_path = Path(index_path)  # results/preprocess/centers/{center}/index.parquet
    index = load_index(index_path)
    images, masks = load_arrays(index, root=index_path.parents[2])
    result = extract_images(images, masks, index["image_id"].tolist(), params_path, processes=processes)
    _write(result, features_out, failures_out)
    return result


def chunk_rows(n_images: int, n_chunks: int, chunk: int) -> range:
    """Index rows of chunk `chunk` (0-based) of `n_chunks` contiguous, near-equal chunks of a centre's images.

    Contiguous, in index order, so that concatenating the chunks in order gives the centre's table exactly
    as one job over the whole centre wrote it. A chunk may be empty when a centre has fewer images than chunks.
    """
    if n_chunks < 1 or not 0 <= chunk < n_chunks:
        raise CinescarError(f"radiomics chunk {chunk} of {n_chunks} does not exist")
    base, extra = divmod(int(n_images), int(n_chunks))
    start = chunk * base + min(chunk, extra)
    return range(start, start + base + (chunk < extra))


def extraction_chunks(manifest_path: str | Path, validation_path: str | Path, chunk_size: int) -> dict[str, int]:
    """Number of extraction chunks per centre slug: ceil(slices of the centre's ED + ES stacks / chunk_size).

    Known as soon as the cohort is validated (the validation report counts every stack's slices), so the
    workflow can lay out the chunk jobs before preprocessing has run. Slices bound the images from above
    (slices without myocardium are not images), so no chunk holds more than `chunk_size` images.
    """
    import csv
    import json

    from cinescar.cohort.contract import slugify

    if int(chunk_size) < 1:
        raise CinescarError(f"radiomics.extract_chunk_images must be >= 1, got {chunk_size}")
    slices = json.loads(Path(validation_path).read_text())["slices_per_phase"]  # {"PID:ED": n, ...}
    per_patient: dict[str, int] = {}
    for key, n in slices.items():
        pid = key.rsplit(":", 1)[0]
        per_patient[pid] = per_patient.get(pid, 0) + int(n)
    totals: dict[str, int] = {}
    with open(manifest_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            slug = slugify(row["center"])
            totals[slug] = totals.get(slug, 0) + per_patient.get(str(row["patient_id"]).strip(), 0)
    return {slug: max(1, -(-total // int(chunk_size))) for slug, total in sorted(totals.items())}


def extract_chunk(
    index_path: str | Path,
    params_path: str | Path,
    chunk: int,
    n_chunks: int,
    features_out: str | Path,
    failures_out: str | Path,
    processes: int = 1,
) -> ExtractionResult:
    """Extract chunk `chunk` of `n_chunks` of one centre's images (`chunk_rows`); write features and failures.

    Why chunks and not one job per centre: the largest centre holds a third of the images and was the
    workflow's critical path; chunks of a few hundred images keep every core busy. An image's features do
    not depend on which other images share its job, so the gathered table is the same, bit for bit.
    """
    from cinescar.preprocessing.store import load_arrays, load_index

    index_path = Path(index_path)  # results/preprocess/centers/{center}/index.parquet
    index = load_index(index_path)
    rows = chunk_rows(len(index), n_chunks, chunk)
    part = index.iloc[rows.start:rows.stop].reset_index(drop=True)
    images, masks = load_arrays(part, root=index_path.parents[2])
    log.info("chunk %d of %d: index rows %d-%d of %d", chunk, n_chunks, rows.start, rows.stop, len(index))
    result = extract_images(images, masks, part["image_id"].tolist(), params_path, processes=processes)
    _write(result, features_out, failures_out)
    return result


def _write(result: ExtractionResult, features_out: str | Path, failures_out: str | Path) -> None:
    Path(features_out).parent.mkdir(parents=True, exist_ok=True)
    result.features.to_parquet(features_out, index=False)
    Path(failures_out).parent.mkdir(parents=True, exist_ok=True)
    result.failures.to_csv(failures_out, index=False)


def gather_features(
    feature_paths: Sequence[str | Path],
    failure_paths: Sequence[str | Path],
    features_out: str | Path,
    failures_out: str | Path,
) -> ExtractionResult:
    """Concatenate feature tables (centres or their chunks, in order; same columns required) and failure tables."""
    tables = [pd.read_parquet(p) for p in feature_paths]
    if not tables:
        raise CinescarError("no per-centre radiomics tables to gather")
    columns = list(tables[0].columns)
    for path, table in zip(feature_paths, tables):
        if list(table.columns) != columns:
            raise CinescarError(f"radiomics table {path} has other feature columns than {feature_paths[0]}: "
                                "were the chunks extracted with different parameter files?")
    # an empty chunk (a centre with fewer images than chunks) adds no rows; leaving it out keeps the columns'
    # dtypes those of the non-empty tables, as if the centre had been one job
    rows = [t for t in tables if len(t)] or tables[:1]
    features = pd.concat(rows, ignore_index=True)
    dup = features["image_id"][features["image_id"].duplicated()]
    if len(dup):
        raise CinescarError(f"image_id(s) in more than one centre's or chunk's radiomics table: "
                            f"{dup.head().tolist()}")
    failure_tables = [t for t in (_read_failures(p) for p in failure_paths) if len(t)]
    failures = pd.concat(failure_tables, ignore_index=True) if failure_tables else pd.DataFrame(
        columns=FAILURE_COLUMNS)
    result = ExtractionResult(features=features, failures=failures)
    _write(result, features_out, failures_out)
    log.info("gathered %d images x %d features from %d table(s); %d failure(s)",
             len(features), features.shape[1] - 1, len(tables), len(failures))
    return result


def _read_failures(path: str | Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"image_id": str, "error": str, "message": str})
    return table.reindex(columns=FAILURE_COLUMNS)

