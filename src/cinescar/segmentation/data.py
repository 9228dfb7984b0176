"""Reading a cohort's stacks into segmentation fields (images, reference labels where a mask exists)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinescar.cohort.contract import PHASES, as_stack, has_path, read_volume, resolve
from cinescar.segmentation.field import FieldGeometry, labels_to_field, stack_to_field
from cinescar.segmentation.labels import reference_labels


@dataclass
class StackFields:
    patient_id: str
    phase: str
    fields: np.ndarray  # (slices, size, size) float32
    labels: np.ndarray | None  # (slices, size, size) uint8 from the manual mask, None without one
    geometry: FieldGeometry
    spacing: tuple[float, float, float]


def manual_mask_path(cohort_dir: Path, row: pd.Series, mask_col: str) -> Path | None:
    """The manifest's mask for this phase, or None when the cell (or the column) is empty."""
    return resolve(cohort_dir, row[mask_col]) if mask_col in row.index and has_path(row[mask_col]) else None


def read_stack_fields(cohort_dir: Path, row: pd.Series, size: int, spacing_mm: float,
                      clip: tuple[float, float], with_labels: bool = True,
                      volumes: dict | None = None) -> list[StackFields]:
    """Both phases of one manifest row as fields; labels from the manual masks when present. `volumes` is
    `read_volume`'s cache: a caller that needs the images again (to write masks in their geometry) reads once."""
    pid = str(row["patient_id"]).strip()
    out = []
    for phase, (img_col, mask_col) in PHASES.items():
        arr, spacing = as_stack(read_volume(resolve(cohort_dir, row[img_col]), pid, volumes))
        fields, geometry = stack_to_field(arr, spacing[:2], size, spacing_mm, clip)
        labels = None
        mask_path = manual_mask_path(cohort_dir, row, mask_col) if with_labels else None
        if mask_path is not None:
            marr, _ = as_stack(read_volume(mask_path, pid))
            labels = labels_to_field(reference_labels(marr > 0), geometry)
        out.append(StackFields(pid, phase, fields, labels, geometry, spacing))
    return out
