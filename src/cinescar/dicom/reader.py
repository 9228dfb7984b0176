"""Read a DICOM cine exam folder into a `Cine`: pixels (phases, slices, rows, cols), timing and geometry.

The pixels are decoded only for the frames of the stack `cinescar.dicom.stack` chose from the headers, with
rescale slope/intercept applied (float32). `Cine.phase_image` gives one phase as the SimpleITK 3D image the
rest of the pipeline reads from a NIfTI: size (columns, rows, slices), spacing (x, y, slice gap), origin =
first pixel of the lowest slice along the normal, direction columns = (row cosine, column cosine, normal).
DICOM patient coordinates are LPS and so are ITK's, so no axis is flipped; this is the geometry SimpleITK's
own series reader gives a single-phase series (checked in the tests).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import UID

from cinescar.dicom.headers import FrameHeader, scan_folder
from cinescar.dicom.stack import StackGrid, build_grid, choose_stack
from cinescar.errors import CohortError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceRef:
    """The DICOM instance (and frame) one (phase, slice) image came from: what a SEG must reference."""

    rel: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    frame_number: int | None  # 1-based frame of a multi-frame instance; None for a single-frame file


@dataclass
class Cine:
    """One short-axis cine: pixels, timing and geometry; no patient identifier is kept."""

    patient_id: str
    folder: Path
    pixels: np.ndarray  # (phases, slices, rows, cols) float32, rescaled
    trigger_times_ms: np.ndarray  # (phases,) mean over slices; NaN when the exam has none
    trigger_times_by_slice_ms: np.ndarray  # (phases, slices)
    slice_positions_mm: np.ndarray  # (slices,) along the normal, increasing
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float]  # LPS mm, first pixel of slice 0
    direction: tuple[float, ...]  # 3x3 row-major, columns = row cosine, column cosine, normal
    sources: list[list[SourceRef]]  # [phase][slice]
    ordered_by: str
    series: list[tuple[int | None, str]]  # (SeriesNumber, SeriesDescription) of the series used
    warnings: list[str] = field(default_factory=list)

    @property
    def n_phases(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def n_slices(self) -> int:
        return int(self.pixels.shape[1])

    def phase_image(self, phase: int, slices: Sequence[int] | None = None) -> sitk.Image:
        """One phase as a 3D SimpleITK image in LPS patient coordinates; `slices` (contiguous, increasing)
        gives a sub-stack (e.g. the mid-ventricular slices for the volume curve) with its true origin."""
        idx = list(range(self.n_slices)) if slices is None else [int(s) for s in slices]
        if not idx or any(b - a != 1 for a, b in zip(idx, idx[1:])) or idx[0] < 0 or idx[-1] >= self.n_slices:
            raise ValueError(f"slices must be contiguous increasing indices within 0..{self.n_slices - 1}")
        img = sitk.GetImageFromArray(self.pixels[phase, idx[0]:idx[-1] + 1])
        img.SetSpacing(self.spacing)
        img.SetDirection(self.direction)
        normal = np.array(self.direction).reshape(3, 3)[:, 2]
        img.SetOrigin(tuple(float(v) for v in np.array(self.origin) + idx[0] * self.spacing[2] * normal))
        return img

    def source_datasets(self, phase: int) -> list[pydicom.Dataset]:
        """Headers (no pixels) of the instances phase `phase` came from, in slice order, each read once."""
        seen: dict[str, pydicom.Dataset] = {}
        for ref in self.sources[phase]:
            if ref.sop_instance_uid not in seen:
                seen[ref.sop_instance_uid] = pydicom.dcmread(self.folder / ref.rel, stop_before_pixels=True)
        return list(seen.values())


def _check_decodable(frames: Sequence[FrameHeader], patient_id: str) -> None:
    """Refuse a transfer syntax no installed decoder handles, before decoding anything."""
    from pydicom.pixels import get_decoder

    for uid in sorted({f.transfer_syntax_uid for f in frames}):
        example = next(f for f in frames if f.transfer_syntax_uid == uid)
        name = getattr(UID(uid), "name", uid) if uid else "none"
        try:
            decoder = get_decoder(UID(uid))
            available = decoder.is_available
        except (NotImplementedError, ValueError):
            available = False
        if not available:
            raise CohortError(f"transfer syntax {name} ({uid}) cannot be decoded with the installed packages; "
                              "convert the exam to an uncompressed or JPEG-LS syntax", patient_id, example.label)


def _decode(path: Path, header: FrameHeader, patient_id: str) -> np.ndarray:
    """All frames of one file. `pydicom.pixels.pixel_array(path)` parses only what decoding needs, not a whole
    dataset (0.33 instead of 0.40-0.50 s for 250 classic 192 x 192 files); the same array as `ds.pixel_array`."""
    from pydicom.pixels import pixel_array

    try:
        return np.asarray(pixel_array(str(path)))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem, named as such
        uid = header.transfer_syntax_uid or "?"
        raise CohortError(f"pixel data could not be decoded (transfer syntax {uid}: {type(exc).__name__})",
                          patient_id, header.rel) from None


def load_pixels(grid: StackGrid, folder: Path, patient_id: str) -> np.ndarray:
    """(phases, slices, rows, cols) float32 with each frame's rescale applied; each file decoded once."""
    out = np.zeros((grid.n_phases, grid.n_slices, grid.rows, grid.cols), np.float32)
    by_file: dict[Path, list[tuple[int, int, FrameHeader]]] = defaultdict(list)
    for p, phase in enumerate(grid.frames):
        for s, f in enumerate(phase):
            by_file[f.path].append((p, s, f))
    for path, items in by_file.items():
        arr = _decode(path, items[0][2], patient_id)
        for p, s, f in items:
            frame = arr if f.frame is None else (arr[f.frame] if arr.ndim == 3 else arr)
            if frame.shape != (grid.rows, grid.cols):
                raise CohortError(f"pixel data has shape {frame.shape}, the header says {grid.rows}x{grid.cols}",
                                  patient_id, f.label)
            out[p, s] = (frame.astype(np.float64) * f.slope + f.intercept).astype(np.float32)
    return out


def read_cine(folder: str | Path, patient_id: str, *, series: Sequence[int] | None = None,
              require_trigger: bool = True) -> Cine:
    """Read the short-axis cine of one exam folder (any file layout inside).

    `series` restricts the search to these SeriesNumbers (needed when a folder holds two stacks).
    `require_trigger=False` (phases given explicitly) orders phases by temporal position / instance number
    when TriggerTime is absent. Raises `CohortError` for anything that cannot be stacked without guessing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CohortError("DICOM exam folder does not exist", patient_id, folder)
    frames, skipped = scan_folder(folder)
    warnings = [f"skipped {len(names)} file(s): {reason}: {', '.join(names)}" for reason, names in skipped.items()]
    stack_frames, stack_warnings = choose_stack(frames, patient_id, folder.name, series)
    warnings += stack_warnings
    for w in warnings:
        log.warning("patient %s: %s", patient_id, w)
    grid = build_grid(stack_frames, patient_id, folder.name, require_trigger=require_trigger)
    warnings += grid.warnings
    _check_decodable([f for phase in grid.frames for f in phase], patient_id)
    pixels = load_pixels(grid, folder, patient_id)
    direction = np.column_stack([grid.row, grid.col, grid.normal])
    sources = [[SourceRef(f.rel, f.sop_class_uid, f.sop_instance_uid, f.series_instance_uid,
                          None if f.frame is None else f.frame + 1) for f in phase] for phase in grid.frames]
    series_used = sorted({(f.series_number, f.series_description) for phase in grid.frames for f in phase},
                         key=lambda t: (t[0] is None, t[0] or 0, t[1]))
    times = grid.trigger_times_ms
    mean_times = np.nanmean(times, axis=1) if np.isfinite(times).any() else np.full(grid.n_phases, np.nan)
    log.info("patient %s: cine of %d phases x %d slices (%dx%d) from %d file(s)", patient_id, grid.n_phases,
             grid.n_slices, grid.rows, grid.cols, len({f.path for phase in grid.frames for f in phase}))
    return Cine(patient_id=patient_id, folder=folder, pixels=pixels, trigger_times_ms=mean_times,
                trigger_times_by_slice_ms=times, slice_positions_mm=np.array(grid.positions_mm),
                spacing=grid.spacing, origin=tuple(float(v) for v in grid.origin),
                direction=tuple(float(v) for v in direction.ravel()), sources=sources, ordered_by=grid.ordered_by,
                series=series_used, warnings=warnings)
