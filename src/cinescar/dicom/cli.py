"""Arguments and entry of `cinescar import-dicom` (the work is `cinescar.dicom.importer.import_dicom_api`).

Kept apart from the importer so building the command line imports neither pandas nor pydicom.
"""

from __future__ import annotations

import argparse
from pathlib import Path

COHORTS = ("internal", "external")  # as cinescar.cohort.contract.COHORTS, without importing pandas
PHASE_CSV = "phase_selection.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="folder with one subfolder of DICOM files per patient "
                        "(the subfolder name is the patient ID; any layout inside)")
    parser.add_argument("--out", type=Path, required=True, help="cohort folder to write (manifest.csv, images/, "
                        f"{PHASE_CSV})")
    parser.add_argument("--labels", type=Path, default=None, help="CSV with patient_id, lge and optionally "
                        "center, vendor, cohort, clinical columns, ed_phase, es_phase")
    parser.add_argument("--series", default=None, help="series number(s) of the short-axis cine, e.g. 7 or "
                        "7,8 (needed when an exam holds two stacks)")
    parser.add_argument("--phases", default=None, help="ed=I,es=J: 0-based phases in time order, for every "
                        "patient (default: ED = smallest trigger time, ES = smallest LV volume of the segmenter)")
    parser.add_argument("--center", default=None, help="centre column (default: labels file, else 'unknown')")
    parser.add_argument("--vendor", default=None, help="vendor column (default: labels file, else the DICOM "
                        "Manufacturer)")
    parser.add_argument("--cohort", choices=COHORTS, default="internal")
    parser.add_argument("--bundle", type=Path, default=None, help="model bundle whose segmenter picks ES and "
                        "writes the myocardium masks (default: none: masks left empty, --phases needed)")
    parser.add_argument("--bundle-sha256", default=None, help="refuse the bundle unless bundle.json has this SHA-256")


def bundle_segmenter(bundle: Path, sha256: str | None = None) -> tuple:
    """(lv_volume_ml, segmenter) callables of a bundle's segmenter, as `import_dicom_api` takes them.

    The importer wants a label image with the myocardium at 1: the segmenter's own myocardium mask is one."""
    from cinescar.errors import CinescarError
    from cinescar.screening.bundle import load_bundle

    seg = load_bundle(bundle, expected_digest=sha256).segmenter
    if seg is None:
        raise CinescarError(f"bundle {bundle} carries no segmenter (the study ran with segmentation.enabled: false)")
    return seg.lv_volume_ml, lambda image: seg.segment_image(image)[0]


def main(args: argparse.Namespace) -> int:
    from cinescar.dicom.importer import import_dicom_api

    lv_volume_ml, segmenter = bundle_segmenter(args.bundle, args.bundle_sha256) if args.bundle else (None, None)
    summary = import_dicom_api(args.root, args.out, labels=args.labels, series=args.series, phases=args.phases,
                               lv_volume_ml=lv_volume_ml, segmenter=segmenter, center=args.center,
                               vendor=args.vendor, cohort=args.cohort)
    print(f"Imported {summary['imported']} DICOM exam(s) into {args.out} (masks "
          f"{'written' if summary['masks'] else 'left empty'}); phases: {Path(args.out) / PHASE_CSV}")
    for p in summary["patients"]:
        print(f"  {p['patient_id']}: {p['phases']} phases x {p['slices']} slices, ED {p['ed']} ({p['ed_method']}), "
              f"ES {p['es']} ({p['es_method']})")
        for w in p["warnings"]:
            print(f"    warning: {w}")
    for key, text in (("without_label_row", "no row in --labels"), ("labels_without_folder", "no folder")):
        if summary[key]:
            print(f"  warning: {text}: {', '.join(summary[key])}")
    return 0
