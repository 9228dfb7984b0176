"""`cinescar screen`: screen one new exam with a trained study's model bundle.

    cinescar screen --bundle results/bundle EXAM_FOLDER [--out result.json] [--gradcam-dir DIR]
    cinescar screen --bundle results/bundle --manifest COHORT/manifest.csv --patient ID [--out result.json]
    cinescar screen --bundle results/bundle DICOM_CINE_FOLDER [--phases ed=I,es=J] [--series N] [--dicom-out DIR]
    cinescar screen --bundle results/bundle (FOLDER_OF_EXAM_FOLDERS | --manifest M) --out-dir DIR [--workers N]

Prints the result as JSON (and writes it to --out). Grad-CAM overlays are drawn when --gradcam-dir is given,
or beside --out (`<out>_gradcam/`) unless --no-gradcam; drawing them imports MONAI (a few seconds).
With --out-dir, every exam of the folder (or every patient of the manifest) is screened after one start-up: one
result per exam in DIR, and DIR/summary.csv listing every exam and its status (`cinescar.screening.batch`).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("exam", nargs="?", help="exam folder holding ED, ED_mask, ES, ES_mask (any SimpleITK "
                        "format, e.g. ED.nii.gz, or DICOM series folders ED/, ED_mask/, ...; masks optional), or "
                        "a DICOM cine folder as the scanner wrote it (every phase, any layout; docs/dicom.md)")
    parser.add_argument("--bundle", default="results/bundle", help="model bundle folder (default results/bundle)")
    parser.add_argument("--manifest", help="screen a patient of a cohort manifest.csv instead of an exam folder")
    parser.add_argument("--patient", help="patient_id in --manifest")
    parser.add_argument("--patient-id", help="ID reported for an exam folder (default: the folder's name)")
    parser.add_argument("--out", help="also write the JSON result here")
    parser.add_argument("--gradcam-dir", help="write Grad-CAM overlays (PNG) of the top DL images here")
    parser.add_argument("--gradcam-images", type=int, default=None, help="number of Grad-CAM overlays "
                        "(default: the bundle's bundle.gradcam_images)")
    parser.add_argument("--no-gradcam", action="store_true", help="draw no Grad-CAM overlays")
    parser.add_argument("--phases", help="DICOM cine only: ed=I,es=J, 0-based phases in time order (default: ED = "
                        "smallest trigger time, ES = smallest LV volume of the bundle's segmenter)")
    parser.add_argument("--series", help="DICOM cine only: series number(s) of the short-axis stack, e.g. 7 or 7,8")
    parser.add_argument("--dicom-out", help="DICOM cine only: write a DICOM SEG per phase and a Secondary Capture "
                        "of the result (research use) here")
    parser.add_argument("--bundle-sha256", help="refuse the bundle unless bundle.json has this SHA-256")
    parser.add_argument("--allow-outside-paths", action="store_true", help="accept --manifest paths that lead "
                        "outside the cohort folder ('..', absolute paths, symlinks), as cinescar validate does")
    parser.add_argument("--out-dir", help="screen many exams after one start-up: every exam folder in the folder "
                        "given (or every patient of --manifest, without --patient); one <exam>.json each and "
                        "summary.csv here")
    parser.add_argument("--workers", type=int, default=None, help="with --out-dir: exams screened side by side "
                        "(default: the usable CPUs)")


def main(args: argparse.Namespace) -> int:
    """Parse nothing more: hand the arguments to `cinescar.screening.screen.screen_api`, print its result."""
    if args.out_dir or args.workers is not None:
        from cinescar.screening import batch

        return batch.main(args)
    from cinescar.screening.screen import result_json, screen_api

    result = screen_api(args.bundle, args.exam, manifest=args.manifest, patient=args.patient,
                        patient_id=args.patient_id, out=args.out, gradcam_dir=args.gradcam_dir,
                        gradcam_images=args.gradcam_images, no_gradcam=args.no_gradcam,
                        bundle_sha256=args.bundle_sha256, allow_outside_paths=args.allow_outside_paths,
                        phases=args.phases, series=args.series, dicom_out=args.dicom_out)
    print(result_json(result))  # warnings are in the result and logged to stderr by screen_exam
    return 0
