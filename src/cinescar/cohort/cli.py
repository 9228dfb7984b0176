"""`cinescar validate` and `cinescar synth`: their arguments, defined next to the commands (issue 26), and the
commands themselves; `cinescar.cli` only registers them. Library imports are deferred into each command so that
`--help` starts fast."""

from __future__ import annotations

import argparse


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `cinescar validate`."""
    p.add_argument("cohort", help="cohort folder")
    p.add_argument("--manifest-only", action="store_true", help="check the manifest only, do not read images")
    p.add_argument("--json", help="also write the validation report as JSON here")
    p.add_argument("--config", default=None, help="workflow config whose splits (folds, test fraction, seed) the "
                   "cohort must allow (default config/config.yaml)")
    p.add_argument("--allow-outside-paths", action="store_true", help="accept manifest paths that lead outside "
                   "the cohort folder ('..', absolute paths, symlinks)")


def validate_main(args: argparse.Namespace) -> int:
    """Run every input check on a cohort folder and print the verdict (an error raises CinescarError)."""
    from cinescar.cohort.validate import validate_api

    report = validate_api(args.cohort, manifest_only=args.manifest_only, config=args.config,
                          allow_outside_paths=args.allow_outside_paths, json_path=args.json)
    print(f"cohort {args.cohort}: OK — {report.n_patients} patients ({report.n_internal} internal, "
          f"{report.n_external} external, {report.n_lge_positive} LGE+), centres: {', '.join(report.centers)}")
    for w in report.warnings:
        print(f"warning: {w}")
    return 0


def add_synth_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `cinescar synth`."""
    p.add_argument("--out", default="results/synthetic/cohort", help="cohort folder to write")
    p.add_argument("--config", default=None, help="config file (default config/config.yaml)")
    p.add_argument("--patients", type=int, default=None, help="internal patients (paper size: 759)")
    p.add_argument("--external", type=int, default=None, help="external patients (paper size: 100)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: config seed)")
    p.add_argument("--figure", default=None, help="also render a figure of a few patients to this PNG")


def synth_main(args: argparse.Namespace) -> int:
    """Write the built-in synthetic cohort and print where it went."""
    from cinescar.cohort.synth import synth_api

    manifest, figure = synth_api(args.out, config=args.config, patients=args.patients, external=args.external,
                                 seed=args.seed, figure=args.figure)
    print(f"synthetic cohort written: {manifest}")
    if figure is not None:
        print(f"figure: {figure}")
    return 0
