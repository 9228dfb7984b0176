"""A DICOM cine exam folder in `cinescar screen`: detected, read once, screened like any exam; DICOM out.

Why a module of its own: the screen path (`screen.py`) works on an `Exam` of files and a read cache. A
scanner's cine is neither: it holds every phase of every slice. Here the folder is read with
`cinescar.dicom.read_exam` (the same reader `import-dicom` uses, so both stack and choose ED/ES alike), its ED
and ES images go into the read cache under keys that are never files (`dicom_image_key`), exactly as the
segmenter's predicted masks do, and the rest of screening is unchanged. `write_dicom_outputs` turns the
result back into DICOM: one SEG per phase (the segmenter's myocardium and LV cavity on the source grid) and a
Secondary Capture of the result, both carrying the source's patient and study modules -- which never reach
the result or the logs (only the cohort patient ID and file names do).
"""

from __future__ import annotations

import logging
import os
from itertools import islice
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from cinescar.errors import CohortError

log = logging.getLogger(__name__)

EXAM_STEMS = ("ed", "ed_mask", "es", "es_mask")
"""Stems of an ED/ES exam folder's entries (`screen.EXAM_NAMES`): their presence means 'not a cine folder'."""
PROBE_FILES = 16
"""Files looked at to decide whether a folder is a DICOM cine (reading a 132-byte preamble each)."""


def dicom_image_key(phase: str) -> Path:
    """The read-cache key of a DICOM cine's ED or ES image (never a real file: nothing reads it from disk)."""
    return Path(f"<dicom {phase} image>")


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_dicom_cine_folder(folder: str | Path) -> bool:
    """True for a folder holding DICOM files (any depth) and no ED/ES entries: cheap, reads a few preambles.

    An ED/ES exam folder (`ED.nii.gz`, `ED/` holding one series, ...) is never taken for a cine, so the
    layouts screened before keep their meaning."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if any(p.name.split(".", 1)[0].lower() in EXAM_STEMS for p in entries):
        return False

    def files():
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield from (Path(root) / n for n in sorted(names) if not n.startswith("."))

    return any(_is_dicom_file(p) for p in islice(files(), PROBE_FILES))


def read_dicom_exam(folder: str | Path, patient_id: str, segmenter, *, phases: Mapping[str, int] | None = None,
                    series: Sequence[int] | None = None):
    """Read the cine and pick ED/ES (ES by the segmenter's LV volume unless given); a `DicomExam`.

    A cine carries no masks, so screening it needs the bundle's segmenter whatever the phases: without one,
    a named error says so (and how ES could be given) before any pixel is read."""
    from cinescar.dicom.exam import read_exam

    phases = dict(phases or {})
    if segmenter is None:
        need = "" if {"ed", "es"} <= set(phases) else " and to pick end-systole (or give --phases ed=I,es=J)"
        raise CohortError("a DICOM cine folder has no myocardium masks and the bundle carries no segmenter (the "
                          f"study ran with segmentation.enabled: false); one is needed to segment it{need}; "
                          "or convert it with cinescar import-dicom and give the masks", patient_id, folder)
    return read_exam(folder, patient_id, lv_volume_ml=segmenter.lv_volume_ml, phases=phases, series=series)


def exam_inputs(dicom, patient_id: str, folder: Path) -> tuple[Any, dict]:
    """The screening `Exam` of a read cine (image keys only: masks are predicted) and its read cache."""
    from cinescar.screening.exam import Exam

    files = {"ed_image": dicom_image_key("ED"), "es_image": dicom_image_key("ES")}
    volumes = {dicom_image_key(phase): image for phase, image in dicom.images.items()}
    return Exam(patient_id=patient_id, files=files, source=Path(folder)), volumes


# ----------------------------------------------------------------------------------------------- DICOM out


def result_lines(result: dict[str, Any]) -> list[str]:
    """The text of the Secondary Capture: per model its probability, cut-off and decision; QC flags."""
    lines = [f"cinescar screening, patient {result['patient_id']}"]
    for name, m in result["models"].items():
        prob = m.get("probability")
        shown = "n/a" if prob is None else f"{prob:.3f}"
        lines.append(f"{name}: P(scar) {shown} (cut-off {m.get('cutoff', float('nan')):.3f}) {m.get('decision')}")
    flags = result.get("segmentation", {}).get("qc_flags") or []
    lines.append(f"mask QC flags: {', '.join(flags) if flags else 'none'}")
    return lines


def render_result(result: dict[str, Any], width: int = 640) -> np.ndarray:
    """An RGB uint8 picture: the result's text, then the Grad-CAM overlays (if any were drawn) side by side."""
    from PIL import Image, ImageDraw

    lines = result_lines(result)
    overlays = []
    for item in result.get("gradcam") or []:
        try:
            overlays.append(Image.open(item["png"]).convert("RGB"))
        except OSError:
            log.warning("patient %s: Grad-CAM overlay %s unreadable; left out of the secondary capture",
                        result["patient_id"], Path(item["png"]).name)
    tile = width // max(1, len(overlays)) if overlays else 0
    tiles = [o.resize((tile, max(1, round(o.height * tile / o.width)))) for o in overlays]
    text_h = 16 * len(lines) + 8
    canvas = Image.new("RGB", (width, text_h + max((t.height for t in tiles), default=0) + 24), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, 4 + 16 * i), line, fill=(255, 255, 255))
    for i, t in enumerate(tiles):
        canvas.paste(t, (i * tile, text_h))
    return np.asarray(canvas)


def write_dicom_outputs(dicom, segmentations: Mapping[str, Any], result: dict[str, Any], out_dir: str | Path
                        ) -> dict[str, Any]:  # fmt: skip
    """A SEG per phase (myocardium 1 and LV cavity 2 of the segmentation screening used, on the source grid)
    and one Secondary Capture of the result; returns their paths (file names hold the cohort patient ID only)."""
    from cinescar.dicom.seg import write_secondary_capture, write_seg

    out_dir = Path(out_dir)
    pid = result["patient_id"]
    index = {"ED": dicom.selection.ed, "ES": dicom.selection.es}
    segs = {}
    for phase, stack in segmentations.items():
        path = out_dir / f"{pid}_{phase}_seg.dcm"
        segs[phase] = str(write_seg(dicom.cine, index[phase], stack.on_image_grid(), path))
    sc = write_secondary_capture(dicom.cine, render_result(result), out_dir / f"{pid}_result_sc.dcm",
                                 phase=dicom.selection.ed, description="cinescar screening result")
    return {"seg": segs, "secondary_capture": str(sc)}
