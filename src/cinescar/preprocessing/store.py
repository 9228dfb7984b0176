"""The preprocessed image store: per centre, two .npy arrays and an index table.

Per-centre shards let Snakemake preprocess (and later extract radiomics for) centres in parallel; plain
.npy files can be memory-mapped, so a fold's training job reads only the rows it needs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cinescar.cohort.contract import (PHASES, as_stack, has_path, mask_source, parse_scar_slices, read_manifest,
                                      read_volume, resolve, slugify)
from cinescar.errors import CohortError
from cinescar.io import atomic_write
from cinescar.preprocessing.fingerprint import FINGERPRINT_COLUMNS, stack_fingerprint
from cinescar.preprocessing.images import PreprocessSettings, crop_center, preprocess_stack
from cinescar.preprocessing.selection import development_selection

log = logging.getLogger(__name__)
DEFAULT_ROOT = Path("results/preprocess")
# The preprocessed store is a format, read by row through the index (`load_arrays`), like nnU-Net's preprocessed
# folder: one folder per centre holding these three files. Their names have this one home in code; the
# `preprocess_center` rule declares the same names (tests/test_structure.py holds the two equal).
STORE_FILES = {"images": "images.npy", "masks": "masks.npy", "index": "index.parquet"}
INDEX_COLUMNS = ["image_id", "patient_id", "center", "center_slug", "vendor", "cohort", "lge", "phase", "slice",
                 "n_slices", "scar_slice", "dev_selected", "row", "mask_source", *FINGERPRINT_COLUMNS]

__all__ = ["preprocess_center", "gather_index", "load_index", "load_arrays", "crop_center", "image_id"]


def image_id(patient_id: str, phase: str, slice_index: int) -> str:
    return f"{patient_id}_{phase}_{slice_index:02d}"


def preprocess_exam(pid: str, files: dict[str, Path], settings: PreprocessSettings,
                    scar_slices: list[int] | None = None, meta: dict | None = None, volumes: dict | None = None
                    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Preprocess one patient's ED and ES stacks; returns images, masks and index rows (no `row`).

    Each row carries its stack's raw fingerprint (`FINGERPRINT_COLUMNS`), measured here while the image is
    in memory. `volumes` is `read_volume`'s cache: files already read (by the exam checks) are not re-read.
    """
    meta = dict(meta or {})
    images, masks, rows = [], [], []
    for phase, (img_col, mask_col) in PHASES.items():
        img = read_volume(files[img_col], pid, volumes)
        msk = read_volume(files[mask_col], pid, volumes)
        arr, spacing = as_stack(img)
        marr, _ = as_stack(msk)
        if arr.shape != marr.shape:
            raise CohortError(f"{phase}: mask shape {marr.shape} differs from image shape {arr.shape}",
                              pid, files[mask_col])
        ims, mks, kept = preprocess_stack(arr.astype(np.float32), marr, spacing[:2], settings)
        if not kept:
            raise CohortError(f"{phase}: no slice holds myocardium after resampling", pid, files[mask_col])
        dropped = arr.shape[0] - len(kept)
        if dropped:
            log.info("patient %s %s: %d of %d slices hold no myocardium (not images)", pid, phase, dropped,
                     arr.shape[0])
        images.append(ims)
        masks.append(mks)
        fingerprint = stack_fingerprint(arr, spacing)
        for z in kept:
            rows.append({**meta, "image_id": image_id(pid, phase, z), "patient_id": pid, "phase": phase,
                         "slice": z, "n_slices": arr.shape[0],
                         "scar_slice": (z in scar_slices) if scar_slices is not None else pd.NA, **fingerprint})
    return np.concatenate(images), np.concatenate(masks), pd.DataFrame(rows)


def predicted_mask_path(masks_dir: str | Path, patient_id: str, phase: str) -> Path:
    """Where the segmentation stage wrote a patient's predicted mask (the one home of that name)."""
    return Path(masks_dir) / f"{patient_id}_{phase}.nii.gz"


def preprocess_center(cohort_dir: str | Path, center_slug: str, out_dir: str | Path, cfg: dict,
                      masks_policy: str = "manual", predicted_masks: str | Path | None = None) -> pd.DataFrame:
    """Preprocess every patient of one centre into `out_dir` (images.npy, masks.npy, index.parquet).

    `masks_policy` (`segmentation.masks`) chooses per stack the manual mask or the segmenter's prediction in
    `predicted_masks` (the segmentation stage's folder of this centre); the index records it (`mask_source`).
    """
    settings = PreprocessSettings.from_config(cfg)
    n_negative = int(cfg.get("preprocessing", {}).get("dev_slices_negative", 6))
    cohort_dir = Path(cohort_dir)
    manifest = read_manifest(cohort_dir)
    rows = manifest[manifest["center"].astype(str).map(slugify) == center_slug]
    if rows.empty:
        raise CohortError(f"no patient of centre '{center_slug}' in the manifest", path=cohort_dir / "manifest.csv")
    images, masks, tables = [], [], []
    for _, r in rows.iterrows():
        pid = str(r["patient_id"])
        files, sources = {}, {}
        for phase, (img_col, mask_col) in PHASES.items():
            files[img_col] = resolve(cohort_dir, r[img_col])
            sources[phase] = mask_source(masks_policy, has_path(r[mask_col]))
            if sources[phase] == "manual":
                files[mask_col] = resolve(cohort_dir, r[mask_col])
            elif predicted_masks is None:
                raise CohortError(f"{phase}: no manual mask and no predicted one (segmentation disabled?)", pid,
                                  cohort_dir / "manifest.csv")
            else:
                files[mask_col] = predicted_mask_path(predicted_masks, pid, phase)
        scar = parse_scar_slices(r.get("scar_slices"), pid, cohort_dir / "manifest.csv")
        meta = {"center": str(r["center"]), "center_slug": center_slug, "vendor": str(r["vendor"]),
                "cohort": str(r["cohort"]), "lge": int(float(r["lge"]))}
        ims, mks, table = preprocess_exam(pid, files, settings, scar, meta)
        table["mask_source"] = table["phase"].map(sources)
        images.append(ims)
        masks.append(mks)
        tables.append(table)
    index = pd.concat(tables, ignore_index=True)
    index["row"] = np.arange(len(index))
    index["dev_selected"] = development_selection(index, n_negative)
    index["scar_slice"] = index["scar_slice"].astype("boolean")
    index = index[INDEX_COLUMNS]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_images, all_masks = np.concatenate(images).astype(np.float32), np.concatenate(masks).astype(np.uint8)
    atomic_write(out_dir / STORE_FILES["images"], lambda tmp: np.save(tmp, all_images))
    atomic_write(out_dir / STORE_FILES["masks"], lambda tmp: np.save(tmp, all_masks))
    index.to_parquet(out_dir / STORE_FILES["index"], index=False)  # written last: its presence means complete
    log.info("centre %s: %d patients, %d images (%d for development)", center_slug, rows.shape[0], len(index),
             int(index["dev_selected"].sum()))
    return index


def gather_index(paths: list[str | Path], out: str | Path) -> pd.DataFrame:
    index = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    dup = index["image_id"][index["image_id"].duplicated()]
    if not dup.empty:
        raise CohortError(f"image id {dup.iloc[0]} appears in two centres")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    index.to_parquet(out, index=False)
    return index


def load_index(path: str | Path = DEFAULT_ROOT / STORE_FILES["index"]) -> pd.DataFrame:
    return pd.read_parquet(path)


def load_arrays(index: pd.DataFrame, root: str | Path = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 256, 256) float32 and masks (N, 256, 256) uint8 in the order of `index`'s rows."""
    root = Path(root)
    n = len(index)
    if n == 0:
        return np.zeros((0, 0, 0), np.float32), np.zeros((0, 0, 0), np.uint8)
    slugs = index["center_slug"].to_numpy()
    rows = index["row"].to_numpy()
    images = masks = None
    for slug in pd.unique(slugs):
        img = np.load(root / "centers" / slug / STORE_FILES["images"], mmap_mode="r")
        msk = np.load(root / "centers" / slug / STORE_FILES["masks"], mmap_mode="r")
        if images is None:
            images = np.empty((n, *img.shape[1:]), np.float32)
            masks = np.empty((n, *msk.shape[1:]), np.uint8)
        where = np.flatnonzero(slugs == slug)
        images[where] = img[rows[where]]
        masks[where] = msk[rows[where]]
    return images, masks
