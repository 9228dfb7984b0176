"""DICOM out: a SEG of myocardium and LV cavity on one phase, and a Secondary Capture of a rendered result.

Both are written with highdicom, so they are valid objects a PACS or viewer accepts, and both copy the
patient and study modules from the source cine (that is what files them under the right patient); those
identifiers stay in the files: nothing here logs more than counts and relative names. The SEG references
the source instances (and frames, for a multi-frame source) of the chosen phase, with algorithm type
AUTOMATIC and cinescar's name and version. The Secondary Capture is marked "research use, not for
diagnosis" in its pixels (a burned-in banner), its series description and its image comments.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from cinescar import __version__
from cinescar.cohort.contract import geometry_mismatch
from cinescar.errors import CinescarError

log = logging.getLogger(__name__)

RESEARCH_ONLY = "research use, not for diagnosis"
MANUFACTURER = "cinescar"
DEFAULT_LABELS: dict[str, int] = {"myocardium": 1, "lv_cavity": 2}
"""Label values of the label image: the segmenter's myocardium and LV cavity."""
_SEGMENTS = {
    "myocardium": ("Myocardium", codes.SCT.Tissue, codes.SCT.StructureOfMyocardiumOfLeftVentricle),
    "lv_cavity": ("LV cavity", codes.SCT.AnatomicalStructure, codes.SCT.LeftVentricle),
}


def _algorithm() -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(name=MANUFACTURER, family=codes.cid7162.ArtificialIntelligence,
                                              version=__version__)


def _label_array(cine, phase: int, labels: np.ndarray | sitk.Image) -> np.ndarray:
    """(slices, rows, cols) integer labels on the source grid of `phase`; a SimpleITK image must match it."""
    if isinstance(labels, sitk.Image):
        mismatch = geometry_mismatch(cine.phase_image(phase), labels)
        if mismatch:
            raise CinescarError(f"SEG label image is not on the source grid ({mismatch}); resample it back first")
        labels = sitk.GetArrayFromImage(labels)
    labels = np.asarray(labels)
    expected = (cine.n_slices, *cine.pixels.shape[2:])
    if labels.shape != expected:
        raise CinescarError(f"SEG label array has shape {labels.shape}, the source grid is {expected}")
    return labels


def write_seg(cine, phase: int, labels: np.ndarray | sitk.Image, out_path: str | Path, *,
              label_values: Mapping[str, int] | None = None, series_number: int = 9901) -> Path:
    """Write a binary DICOM SEG of phase `phase` of `cine` (a `cinescar.dicom.Cine`); returns the path.

    `labels` is a label image on the source grid, (slices, rows, cols) in the cine's slice order, or the
    SimpleITK image of that phase's geometry; `label_values` maps "myocardium"/"lv_cavity" to its values.
    """
    values = dict(DEFAULT_LABELS if label_values is None else label_values)
    arr = _label_array(cine, phase, labels)
    names = [n for n in _SEGMENTS if n in values]
    mask = np.stack([arr == values[n] for n in names], axis=-1)  # (slices, rows, cols, segments)
    descriptions = [hd.seg.SegmentDescription(segment_number=i + 1, segment_label=_SEGMENTS[n][0],
                                              segmented_property_category=_SEGMENTS[n][1],
                                              segmented_property_type=_SEGMENTS[n][2],
                                              algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                              algorithm_identification=_algorithm())
                    for i, n in enumerate(names)]
    sources = cine.source_datasets(phase)
    extra = {}
    if len(sources) == 1 and cine.n_slices > 1:  # one multi-frame source: say which frames (planes) are segmented
        extra["plane_positions"] = [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT,
                                                             _position(cine, s)) for s in range(cine.n_slices)]
        extra["plane_orientation"] = hd.PlaneOrientationSequence(hd.CoordinateSystemNames.PATIENT,
                                                                 _orientation(cine))
        extra["pixel_measures"] = hd.PixelMeasuresSequence(pixel_spacing=(cine.spacing[1], cine.spacing[0]),
                                                           slice_thickness=cine.spacing[2])
    seg = hd.seg.Segmentation(source_images=sources, pixel_array=mask,
                              segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                              segment_descriptions=descriptions, series_instance_uid=generate_uid(),
                              series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
                              manufacturer=MANUFACTURER, manufacturer_model_name="cinescar",
                              software_versions=__version__, device_serial_number="0",
                              series_description=f"cinescar myocardium ({RESEARCH_ONLY})"[:64],
                              omit_empty_frames=False, **extra)
    if len(sources) == 1 and cine.n_slices > 1:
        _fix_frame_references(seg, cine, phase)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out_path)
    log.info("patient %s: SEG of phase %d (%d slices, %d segments) written to %s", cine.patient_id, phase,
             cine.n_slices, len(names), out_path.name)
    return out_path


def _orientation(cine) -> list[float]:
    d = np.array(cine.direction).reshape(3, 3)
    return [float(v) for v in (*d[:, 0], *d[:, 1])]


def _position(cine, s: int) -> list[float]:
    d = np.array(cine.direction).reshape(3, 3)
    return [float(v) for v in np.array(cine.origin) + s * cine.spacing[2] * d[:, 2]]


def _patient_orientation(cine) -> tuple[str, str]:
    """PatientOrientation letters of the source's row and column directions (dominant LPS axis): a figure
    drawn in the short-axis plane keeps the plane's orientation."""
    d = np.array(cine.direction).reshape(3, 3)
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    out = []
    for v in (d[:, 0], d[:, 1]):
        axis = int(np.argmax(np.abs(v)))
        out.append(letters[axis][int(v[axis] > 0)])
    return out[0], out[1]


def _fix_frame_references(seg: hd.seg.Segmentation, cine, phase: int) -> None:
    """Point each SEG frame at the source frame of its slice in `phase`.

    Why by hand: with one multi-frame cine as source, highdicom matches SEG planes to source frames by
    position, and every phase has a frame at that position; it picks one of them, not necessarily the
    phase segmented. The slice is found from the frame's plane position along the normal.
    """
    d = np.array(cine.direction).reshape(3, 3)
    for item in seg.PerFrameFunctionalGroupsSequence:
        ipp = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        s = int(np.argmin(np.abs(cine.slice_positions_mm - float(np.dot(ipp, d[:, 2])))))
        ref = cine.sources[phase][s]
        for derivation in item.get("DerivationImageSequence", []):
            for src in derivation.get("SourceImageSequence", []):
                src.ReferencedSOPInstanceUID = ref.sop_instance_uid
                if ref.frame_number is not None:
                    src.ReferencedFrameNumber = ref.frame_number


def research_banner(rgb: np.ndarray, text: str = RESEARCH_ONLY) -> np.ndarray:
    """`rgb` with a black band and `text` burned in at the bottom (PIL's built-in font; no font file)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    draw = ImageDraw.Draw(img)
    band = max(12, img.height // 16)
    draw.rectangle([0, img.height - band, img.width, img.height], fill=(0, 0, 0))
    draw.text((4, img.height - band + max(0, (band - 11) // 2)), text.upper(), fill=(255, 255, 0))
    return np.asarray(img)


def write_secondary_capture(cine, rgb: np.ndarray, out_path: str | Path, *, phase: int = 0,
                            description: str = "cinescar result", series_number: int = 9902) -> Path:
    """Write an RGB uint8 (rows, cols, 3) picture as a DICOM Secondary Capture in the cine's study.

    The picture gets a burned-in "research use, not for diagnosis" banner (BurnedInAnnotation YES), and the
    same words in SeriesDescription and ImageComments. Patient and study modules come from the source
    instance of `phase`, slice 0.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise CinescarError(f"a Secondary Capture needs an RGB uint8 (rows, cols, 3) array, got {rgb.dtype} "
                            f"{rgb.shape}")
    ref = cine.source_datasets(phase)[0]
    sc = hd.sc.SCImage.from_ref_dataset(ref_dataset=ref, pixel_array=research_banner(rgb),
                                        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
                                        bits_allocated=8, coordinate_system=hd.CoordinateSystemNames.PATIENT,
                                        patient_orientation=_patient_orientation(cine),
                                        series_instance_uid=generate_uid(), series_number=series_number,
                                        sop_instance_uid=generate_uid(), instance_number=1,
                                        manufacturer=MANUFACTURER, transfer_syntax_uid="1.2.840.10008.1.2.1")
    sc.SeriesDescription = f"{description} ({RESEARCH_ONLY})"[:64]
    sc.ImageComments = f"{description}: {RESEARCH_ONLY}. cinescar {__version__}."
    sc.BurnedInAnnotation = "YES"
    sc.SoftwareVersions = __version__
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sc.save_as(out_path)
    log.info("patient %s: secondary capture %dx%d written to %s", cine.patient_id, rgb.shape[1], rgb.shape[0],
             out_path.name)
    return out_path
