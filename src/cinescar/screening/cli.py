"""`cinescar screen`: screen one new exam with a trained study's model bundle.

    cinescar screen --bundle results/bundle EXAM_FOLDER [--out result.json] [--gradcam-dir DIR]
    cinescar screen --bundle results/bundle --manifest COHORT/manifest.csv --patient ID [--out result.json]

Prints the result as JSON (and writes it to --out). Grad-CAM overlays are drawn when --gradcam-dir is given,
or beside --out (`<out>_gradcam/`) unless --no-gradcam; drawing them imports MONAI (a few seconds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cinescar.errors import CinescarError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("exam", nargs="?", help="exam folder holding ED, ED_mask, ES, ES_mask (any SimpleITK "
                        "format, e.g. ED.nii.gz, or DICOM series folders ED/, ED_mask/, ...)")
    parser.add_argument("--bundle", default="results/bundle", help="model bundle folder (default results/bundle)")
    parser.add_argument("--manifest", help="screen a patient of a cohort manifest.csv instead of an exam folder")
    parser.add_argument("--patient", help="patient_id in --manifest")
    parser.add_argument("--patient-id", help="ID reported for an exam folder (default: the folder's name)")
    parser.add_argument("--out", help="also write the JSON result here")
    parser.add_argument("--gradcam-dir", help="write Grad-CAM overlays (PNG) of the top DL images here")
    parser.add_argument("--gradcam-images", type=int, default=None, help="number of Grad-CAM overlays "
                        "(default: the bundle's bundle.gradcam_images)")
    parser.add_argument("--no-gradcam", action="store_true", help="draw no Grad-CAM overlays")
    parser.add_argument("--bundle-sha256", help="refuse the bundle unless bundle.json has this SHA-256")
    parser.add_argument("--allow-outside-paths", action="store_true", help="accept --manifest paths that lead "
                        "outside the cohort folder ('..', absolute paths, symlinks), as cinescar validate does")


def main(args: argparse.Namespace) -> int:
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import exam_from_folder, exam_from_manifest, screen_exam

    if (args.exam is None) == (args.manifest is None):
        raise CinescarError("give either an exam folder or --manifest with --patient")
    if args.manifest is not None and not args.patient:
        raise CinescarError("--manifest needs --patient ID")
    exam = (exam_from_manifest(args.manifest, args.patient, args.allow_outside_paths) if args.manifest
            else exam_from_folder(args.exam, args.patient_id))  # fmt: skip
    bundle = load_bundle(args.bundle, expected_digest=args.bundle_sha256)
    gradcam_dir = None
    if not args.no_gradcam:
        if args.gradcam_dir:
            gradcam_dir = Path(args.gradcam_dir)
        elif args.out:
            gradcam_dir = Path(args.out).with_name(f"{Path(args.out).stem}_gradcam")
    result = screen_exam(bundle, exam, gradcam_dir=gradcam_dir, gradcam_images=args.gradcam_images)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)  # warnings are in the result and logged to stderr by screen_exam
    return 0
