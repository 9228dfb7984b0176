"""Masks from the images for screening: the bundle's segmenter on an exam without hand-drawn masks.

The predicted myocardium is handed to the same preprocessing as a manual mask would be (it lives only in the
exam's read cache, never on disk, unless `cinescar segment` writes it). Each predicted stack gets the QC flags
of `cinescar.segmentation.qc`; a flagged exam gets no confident decision (`screen_exam`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cinescar.cohort.contract import PHASES, read_volume
from cinescar.errors import CohortError

log = logging.getLogger(__name__)


def predicted_key(phase: str) -> Path:
    """The read-cache key of a predicted mask (never a real file: nothing reads it from disk)."""
    return Path(f"<predicted {phase} mask>")


def segment_exam(segmenter, patient_id: str, files: dict[str, Path], volumes: dict, qc: dict,
                 phases: list[str] | None = None, stacks: dict | None = None) -> dict[str, Any]:
    """Segment the phases whose mask is missing; put each predicted mask in `files` and the read cache.

    Returns {"mask_source": {phase: manual|predicted}, "qc_flags": [...], "lv": {...}}. `stacks`, when given,
    receives each phase's `StackSegmentation` (myocardium and cavity), what a DICOM SEG is written from.
    """
    from cinescar.segmentation.measures import ejection_fraction, volumes as stack_volumes
    from cinescar.segmentation.qc import exam_flags, stack_flags

    todo = phases if phases is not None else [p for p, (_, m) in PHASES.items() if m not in files]
    source = {p: ("predicted" if p in todo else "manual") for p in PHASES}
    if not todo:
        return {"mask_source": source, "qc_flags": [], "lv": {}}
    if segmenter is None:
        raise CohortError(f"no {', '.join(todo)} mask and the bundle carries no segmenter (the study was run "
                          "with segmentation.enabled: false): give the masks", patient_id,
                          files.get(PHASES[todo[0]][0]))
    flags_by_phase, vols = {}, {}
    for phase in todo:
        img_col, mask_col = PHASES[phase]
        image = read_volume(files[img_col], patient_id, volumes)
        mask, seg = segmenter.segment_image(image)
        key = predicted_key(phase)
        volumes[key] = mask
        files[mask_col] = key
        if stacks is not None:
            stacks[phase] = seg
        flags_by_phase[phase] = stack_flags(seg.labels, seg.confidence, qc)
        vols[phase] = stack_volumes(seg.labels, seg.slice_mm, segmenter.settings.spacing_mm)
    flags = exam_flags(flags_by_phase, vols["ED"], qc) if "ED" in vols else [
        f"{p}:{f}" for p, fl in flags_by_phase.items() for f in fl]
    lv = {f"{p}_{k}": round(v, 2) for p, d in vols.items() for k, v in d.items()}
    if {"ED", "ES"} <= set(vols):
        lv["lvef_pct"] = round(ejection_fraction(vols["ED"]["lv_volume_ml"], vols["ES"]["lv_volume_ml"]), 2)
    return {"mask_source": source, "qc_flags": flags, "lv": lv}


