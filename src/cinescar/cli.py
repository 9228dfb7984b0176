"""`cinescar` command line: the actions that are not the workflow itself.

The workflow runs through `snakemake` (see README); this CLI validates a cohort, writes the synthetic cohort,
imports ACDC-format data and screens a new exam. One pattern (as nnU-Net's entry points): each command's
arguments are defined next to it (`cohort.cli`, `config`, `cohort.acdc`, `dicom.cli`, `screening.cli`,
`screening.segment`: `add_arguments` + `main`) and only registered here; a command parses its arguments, calls
one library function `*_api` (`validate_api`, `synth_api`, `config_api`,
`import_acdc_api`, `import_dicom_api`, `screen_api`: plain typed functions, usable without argparse) and
prints what it returns.
Imports are deferred into each command so `--help` and `validate` start fast. Input problems print as one
`error:` line, never a stack trace.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cinescar import __version__
from cinescar.errors import CinescarError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cinescar", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cinescar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from cinescar import config as config_cli
    from cinescar.cohort import cli as cohort_cli

    p = sub.add_parser("validate", help="run every input check on a cohort folder (manifest.csv + images)")
    cohort_cli.add_validate_arguments(p)
    p.set_defaults(func=cohort_cli.validate_main)

    p = sub.add_parser("synth", help="write the built-in synthetic multi-centre HCM cine cohort")
    cohort_cli.add_synth_arguments(p)
    p.set_defaults(func=cohort_cli.synth_main)

    p = sub.add_parser("config", help="print the validated config with every default filled in")
    config_cli.add_arguments(p)
    p.set_defaults(func=config_cli.main)

    try:
        from cinescar.cohort import acdc
    except ImportError:  # pragma: no cover - importer not installed
        acdc = None
    if acdc is not None and hasattr(acdc, "add_arguments"):
        p = sub.add_parser("import-acdc", help="convert ACDC-format data into a cohort folder")
        acdc.add_arguments(p)
        p.set_defaults(func=acdc.main)

    p = sub.add_parser("import-dicom", help="convert folders of DICOM cine exams (one per patient) into a cohort")
    from cinescar.dicom import cli as dicom_cli

    dicom_cli.add_arguments(p)
    p.set_defaults(func=dicom_cli.main)

    try:
        from cinescar.screening import cli as screen_cli
    except ImportError:
        screen_cli = None
    if screen_cli is not None:
        p = sub.add_parser("screen", help="screen one new exam with a trained study's model bundle")
        screen_cli.add_arguments(p)
        p.set_defaults(func=screen_cli.main)
        from cinescar.screening import segment as segment_cli

        p = sub.add_parser("segment", help="write the bundle segmenter's masks of an exam or a cohort")
        segment_cli.add_arguments(p)
        p.set_defaults(func=segment_cli.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Errors print as one `error:` line (exit 2 for input problems, 1 for anything else);
    `--debug` lets the exception and its traceback through instead."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        from cinescar.logs import silence_itk

        silence_itk()
        return int(args.func(args) or 0)
    except CinescarError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug, not an input problem: one line unless --debug
        if args.debug:
            raise
        print(f"error: internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); rerun with "
              "--debug for the traceback and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
