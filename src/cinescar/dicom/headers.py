"""Read the headers of every file in an exam folder, one record per 2D frame, before any pixel is decoded.

Why headers first: a cine exam is hundreds of files and may hold localizers, long-axis views, reports or
segmentations; sorting and checking them from the headers (`stop_before_pixels=True`) costs a few ms per
file, and pixels are then decoded only for the frames of the chosen stack. Classic MR (one frame per file)
and enhanced multi-frame MR (per-frame functional groups) give the same `FrameHeader`, so the stacking
logic (`cinescar.dicom.stack`) is written once.

Skipped files (not DICOM, not an MR image, localizer, derived, no geometry) are returned with a reason so
the caller warns about each by its relative name; nothing read here is a patient identifier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.4"
IMAGE_SOP_CLASSES = {MR_IMAGE: "MR Image", ENHANCED_MR: "Enhanced MR Image",
                     LEGACY_ENHANCED_MR: "Legacy Converted Enhanced MR Image"}
SKIPPED_IMAGE_TYPES = ("LOCALIZER", "DERIVED")
"""ImageType values whose images are never part of the cine stack (scouts; reformats, maps, overlays)."""


@dataclass(frozen=True)
class FrameHeader:
    """What the stacking needs to know about one 2D frame (a classic file, or one frame of a multi-frame file)."""

    path: Path
    rel: str  # relative to the exam folder: the only name that may appear in logs and errors
    frame: int | None  # 0-based frame index in a multi-frame file; None for a single-frame file
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    series_number: int | None
    series_description: str
    frame_of_reference_uid: str
    transfer_syntax_uid: str
    rows: int
    cols: int
    orientation: tuple[float, ...]  # ImageOrientationPatient: row cosine (x), column cosine (y)
    position: tuple[float, float, float]  # ImagePositionPatient of the first pixel (LPS, mm)
    spacing: tuple[float, float]  # PixelSpacing in DICOM order: (between rows = y, between columns = x)
    trigger_time: float | None  # ms after the R wave
    cardiac_images: int | None  # CardiacNumberOfImages
    acquisition: str  # AcquisitionDateTime or AcquisitionDate+Time: orders repeated acquisitions
    acquisition_number: int | None
    order: int  # TemporalPositionIndex, InstanceNumber or frame number: phase order when no trigger time
    slope: float
    intercept: float

    @property
    def label(self) -> str:
        """File name for messages: `dir/IM001.dcm` or `enhanced.dcm frame 12` (1-based, as viewers show)."""
        return self.rel if self.frame is None else f"{self.rel} frame {self.frame + 1}"


def _number(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _integer(value: object) -> int | None:
    out = _number(value)
    return int(out) if out is not None else None


def _image_type(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\"))
    return tuple(str(v).strip().upper() for v in value)


def _acquisition(ds: Dataset) -> str:
    """A sortable acquisition stamp ('' when absent): DICOM DA/TM strings sort as time."""
    dt = str(ds.get("AcquisitionDateTime", "") or "")
    if dt:
        return dt
    return f"{ds.get('AcquisitionDate', '') or ''}{ds.get('AcquisitionTime', '') or ''}"


def _item(ds: Dataset | None, sequence: str) -> Dataset | None:
    if ds is None:
        return None
    seq = ds.get(sequence)
    return seq[0] if seq else None


def _group_value(per_frame: Dataset, shared: Dataset | None, sequence: str, attribute: str) -> object:
    """An attribute of a functional group, per-frame first, then shared (the standard's precedence)."""
    for source in (per_frame, shared):
        item = _item(source, sequence)
        if item is not None and attribute in item:
            return item.get(attribute)
    return None


def _skip_reason(sop_class: str, image_type: tuple[str, ...]) -> str | None:
    if sop_class not in IMAGE_SOP_CLASSES:
        name = getattr(pydicom.uid.UID(sop_class), "name", sop_class) if sop_class else "no SOP class"
        return f"not an MR image ({name})"
    for flag in SKIPPED_IMAGE_TYPES:
        if flag in image_type:
            return f"{flag.lower()} image (ImageType {'/'.join(image_type)})"
    return None


def _classic_frames(ds: Dataset, path: Path, rel: str, common: dict) -> list[FrameHeader]:
    iop, ipp, spacing = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient"), ds.get("PixelSpacing")
    if not iop or not ipp or not spacing or len(iop) != 6 or len(ipp) != 3 or len(spacing) != 2:
        raise _Skip("no image geometry (ImageOrientationPatient, ImagePositionPatient, PixelSpacing)")
    instance = _integer(ds.get("InstanceNumber"))
    return [FrameHeader(path=path, rel=rel, frame=None, orientation=tuple(float(v) for v in iop),
                        position=tuple(float(v) for v in ipp), spacing=(float(spacing[0]), float(spacing[1])),
                        trigger_time=_number(ds.get("TriggerTime")),
                        cardiac_images=_integer(ds.get("CardiacNumberOfImages")),
                        acquisition=_acquisition(ds), acquisition_number=_integer(ds.get("AcquisitionNumber")),
                        order=instance if instance is not None else 0,
                        slope=_number(ds.get("RescaleSlope")) or 1.0,
                        intercept=_number(ds.get("RescaleIntercept")) or 0.0, **common)]


def _enhanced_frames(ds: Dataset, path: Path, rel: str, common: dict) -> tuple[list[FrameHeader], list[str]]:
    """One FrameHeader per frame of an enhanced MR file; frames flagged localizer/derived are reported."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    n_frames = _integer(ds.get("NumberOfFrames")) or 0
    if len(per_frame) != n_frames or n_frames == 0:
        raise _Skip(f"enhanced MR with {n_frames} frames but {len(per_frame)} per-frame functional groups")
    unassigned_shared = _item(ds, "UnassignedSharedConvertedAttributesSequence")
    cardiac_images = _integer(ds.get("CardiacNumberOfImages"))
    if cardiac_images is None and unassigned_shared is not None:
        cardiac_images = _integer(unassigned_shared.get("CardiacNumberOfImages"))
    frames, flagged = [], []
    for i, item in enumerate(per_frame):
        frame_type = _image_type(_group_value(item, shared, "MRImageFrameTypeSequence", "FrameType"))
        reason = next((f for f in SKIPPED_IMAGE_TYPES if f in frame_type), None)
        if reason:
            flagged.append(f"frame {i + 1}: {reason.lower()}")
            continue
        iop = _group_value(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        ipp = _group_value(item, shared, "PlanePositionSequence", "ImagePositionPatient")
        spacing = _group_value(item, shared, "PixelMeasuresSequence", "PixelSpacing")
        if not iop or not ipp or not spacing:
            raise _Skip(f"frame {i + 1} has no plane position, orientation or pixel spacing")
        trigger = _number(_group_value(item, shared, "CardiacSynchronizationSequence",
                                       "NominalCardiacTriggerDelayTime"))
        if trigger is None:  # where highdicom's legacy conversion (and some converters) put it
            trigger = _number(_group_value(item, None, "UnassignedPerFrameConvertedAttributesSequence",
                                           "TriggerTime"))
        if trigger is None and unassigned_shared is not None:
            trigger = _number(unassigned_shared.get("TriggerTime"))
        content = _item(item, "FrameContentSequence")
        order = _integer(content.get("TemporalPositionIndex")) if content is not None else None
        if order is None:
            order = _integer(_group_value(item, None, "UnassignedPerFrameConvertedAttributesSequence",
                                          "InstanceNumber"))
        acquisition = str(content.get("FrameAcquisitionDateTime", "") or "") if content is not None else ""
        slope = _number(_group_value(item, shared, "PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _number(_group_value(item, shared, "PixelValueTransformationSequence", "RescaleIntercept"))
        frames.append(FrameHeader(
            path=path, rel=rel, frame=i, orientation=tuple(float(v) for v in iop),
            position=tuple(float(v) for v in ipp), spacing=(float(spacing[0]), float(spacing[1])),
            trigger_time=trigger, cardiac_images=cardiac_images, acquisition=acquisition or _acquisition(ds),
            acquisition_number=_integer(ds.get("AcquisitionNumber")), order=order if order is not None else i,
            slope=slope if slope is not None else 1.0, intercept=intercept if intercept is not None else 0.0,
            **common))
    return frames, flagged


class _Skip(Exception):
    """This file is not a frame of the cine (the message says why); the caller warns and goes on."""


def read_headers(path: Path, rel: str) -> tuple[list[FrameHeader], list[str]]:
    """The frames of one file and notes on frames left out; raises `_Skip` for a file that holds none."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise _Skip("not a DICOM file") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure of one file is that file's problem
        raise _Skip(f"unreadable DICOM ({type(exc).__name__})") from None
    media_class = str(getattr(ds.get("file_meta", Dataset()), "MediaStorageSOPClassUID", "") or "")
    if media_class == "1.2.840.10008.1.3.10":
        raise _Skip("DICOMDIR index, not an image")
    sop_class = str(ds.get("SOPClassUID", "") or media_class)
    reason = _skip_reason(sop_class, _image_type(ds.get("ImageType")))
    if reason:
        raise _Skip(reason)
    rows, cols = _integer(ds.get("Rows")), _integer(ds.get("Columns"))
    if not rows or not cols:
        raise _Skip("no pixel matrix (Rows/Columns)")
    common = dict(sop_class_uid=sop_class, sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
                  series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
                  series_number=_integer(ds.get("SeriesNumber")),
                  series_description=str(ds.get("SeriesDescription", "") or ""),
                  frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
                  transfer_syntax_uid=str(getattr(ds.file_meta, "TransferSyntaxUID", "") or ""),
                  rows=rows, cols=cols)
    if sop_class == MR_IMAGE:
        return _classic_frames(ds, path, rel, common), []
    return _enhanced_frames(ds, path, rel, common)


def exam_files(folder: Path) -> list[Path]:
    """Every file below `folder` (any layout, any depth), hidden files and folders excepted, sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return out


def scan_folder(folder: Path) -> tuple[list[FrameHeader], dict[str, list[str]]]:
    """Headers of every frame below `folder`, and the skipped files grouped by reason (relative names)."""
    frames: list[FrameHeader] = []
    skipped: dict[str, list[str]] = {}
    for path in exam_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            found, notes = read_headers(path, rel)
        except _Skip as why:
            skipped.setdefault(str(why), []).append(rel)
            continue
        frames.extend(found)
        for note in notes:
            skipped.setdefault(f"{note.split(': ', 1)[1]} frame", []).append(f"{rel} {note.split(':')[0]}")
    return frames, skipped
