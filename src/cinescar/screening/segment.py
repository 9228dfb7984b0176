"""Masks from the images for screening: the bundle's segmenter on an exam without hand-drawn masks, and
`cinescar segment`, which writes the predicted masks for a user to check or correct.

The predicted myocardium is handed to the same preprocessing as a manual mask would be (it lives only in the
exam's read cache, never on disk, unless `cinescar segment` writes it). Each predicted stack gets the QC flags
of `cinescar.segmentation.qc`; a flagged exam gets no confident decision (`screen_exam`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from cinescar.cohort.contract import PHASES, read_volume
from cinescar.errors import CinescarError, CohortError
from cinescar.io import atomic_write

log = logging.getLogger(__name__)
MASK_NAMES = {"ED": "ED_mask.nii.gz", "ES": "ES_mask.nii.gz"}
"""What `cinescar segment` writes: the names an exam folder's masks take (`screen.EXAM_NAMES`)."""


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


def segment_api(bundle: str | Path, exam: str | Path | None = None, *, manifest: str | Path | None = None,
                out: str | Path, bundle_sha256: str | None = None, allow_outside_paths: bool = False
                ) -> list[dict[str, Any]]:  # fmt: skip
    """`cinescar segment` as a function: predicted masks (myocardium = 1, each image's own geometry) of an exam
    folder, or of every patient of a manifest (one subfolder per patient), written under `out`."""
    from cinescar.cohort.contract import read_manifest
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import exam_from_folder, exam_from_manifest

    if (exam is None) == (manifest is None):
        raise CinescarError("give either an exam folder or --manifest")
    the_bundle = load_bundle(bundle, expected_digest=bundle_sha256)
    if the_bundle.segmenter is None:
        raise CinescarError(f"bundle {bundle} carries no segmenter (the study ran with segmentation.enabled: false)")
    if manifest is not None:
        cohort = Path(manifest).parent if str(manifest).endswith(".csv") else Path(manifest)
        exams = [(exam_from_manifest(manifest, str(pid), allow_outside_paths, masks_optional=True), Path(out) / pid)
                 for pid in read_manifest(cohort)["patient_id"].astype(str).str.strip()]
    else:
        exams = [(exam_from_folder(exam, masks_optional=True), Path(out))]
    results = []
    qc = the_bundle.meta["segmentation"]["qc"]
    for ex, dest in exams:
        files = {c: p for c, p in ex.files.items() if c in ("ed_image", "es_image")}
        volumes: dict = {}
        info = segment_exam(the_bundle.segmenter, ex.patient_id, files, volumes, qc, phases=list(PHASES))
        written = {}
        for phase, name in MASK_NAMES.items():
            mask = volumes[predicted_key(phase)]
            path = dest / name
            atomic_write(path, lambda tmp, m=mask: sitk.WriteImage(m, str(tmp)))
            written[phase] = str(path)
        log.info("patient %s: masks written to %s (QC flags: %s)", ex.patient_id, dest,
                 ", ".join(info["qc_flags"]) or "none")
        results.append({"patient_id": ex.patient_id, "masks": written, **info})
    return results


def add_arguments(parser) -> None:
    """`cinescar segment --bundle B (EXAM_FOLDER | --manifest M) --out DIR`."""
    parser.description = "write predicted myocardium masks (NIfTI, each image's geometry) for checking or correction"
    parser.add_argument("exam", nargs="?", help="exam folder holding ED and ES images (masks, if any, are ignored)")
    parser.add_argument("--bundle", default="results/bundle", help="model bundle folder (default results/bundle)")
    parser.add_argument("--manifest", help="segment every patient of a cohort manifest.csv (one subfolder each)")
    parser.add_argument("--out", required=True, help="folder for ED_mask.nii.gz and ES_mask.nii.gz")
    parser.add_argument("--bundle-sha256", help="refuse the bundle unless bundle.json has this SHA-256")
    parser.add_argument("--allow-outside-paths", action="store_true", help="accept --manifest paths outside the "
                        "cohort folder")


def main(args) -> int:
    import json

    results = segment_api(args.bundle, args.exam, manifest=args.manifest, out=args.out,
                          bundle_sha256=args.bundle_sha256, allow_outside_paths=args.allow_outside_paths)
    print(json.dumps(results, indent=2))
    return 0
