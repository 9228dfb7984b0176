"""From a folder of DICOM cine exams to the study's report: `cinescar import-dicom`, then the workflow (issue 23).

    PYTHONPATH=src .venv/bin/python benchmarks/dicom_cohort_study.py [--workdir DIR] [--cores 2]
        [--internal 18] [--external 4] [--masks-only 10] [--epochs 30] [--no-workflow] [--no-reimport]

1. The synthetic cohort (`cinescar.cohort.synth`, seed --seed) gives --internal + --masks-only internal and
   --external external patients. Each study patient's ED stack becomes a DICOM cine of 16-30 phases whose LV
   cavity shrinks to a known ES phase and back (`tests/dicom_fixtures.contracting_cine`), written as one
   folder per patient in turn as one classic series, one series per slice and one enhanced multi-frame file
   (`write_cine_from_images`). `labels.csv` carries lge, centre, vendor, cohort, scar_slices and the clinical
   columns of the synthetic manifest, and `es_phase` (the import has no segmenter yet, so ES is given; ED is
   picked from the trigger times).
2. `cinescar import-dicom EXAMS --out COHORT --labels labels.csv` (no --bundle: the mask columns stay empty),
   then `cinescar validate COHORT`. Phases are compared with the truth, the NIfTI pixels with the cine's.
3. The workflow: `snakemake --cores N --configfile .test/config.yaml OVERRIDE --directory RUN` where OVERRIDE
   points `cohort.path` at COHORT (`synthetic: false`) and, as a site without contours brings its cohort
   (config/acdc-nomasks.yaml), sets `segmentation.masks: predicted` with the --masks-only patients' NIfTI
   stacks and manual masks as `segmentation.extra_cohorts`: the workflow's own segmenter learns from them and
   draws every study mask. The segmenter is made bigger than .test's smoke one (channels 8-32, crop 96,
   --epochs epochs without early stop, learning rate 0.003) so its masks are usable.
4. Unless --no-reimport: `cinescar import-dicom` again, this time with `--bundle RUN/results/bundle` and no
   `es_phase`, so the study's own (small, briefly trained) segmenter picks ES and writes the masks.

Printed: the commands, the machine and `uptime`, patients imported, ED/ES picked vs truth, the wall times of
import and workflow, whether the report and the bundle exist, and the mask source per cohort role (from the
preprocessed index, as the report's "Masks and the study's segmenter" table). No assertion; the figures go
into docs/dicom.md ("From a DICOM folder to the report").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

CINES = [(20, 7), (25, 9), (16, 6), (30, 11)]
"""(phases, ES phase) of the study patients' cines, in turn (layouts cycle by 3, cines by 4: they mix)."""
CLINICAL_DROP = ("ed_image", "ed_mask", "es_image", "es_mask")


def env() -> dict:
    """The child processes import this checkout's `src` (the venv may hold another checkout, editable)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [e.get("PYTHONPATH")])])
    return e


def run(cmd: list[str], **kwargs) -> float:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run([str(c) for c in cmd], check=True, env=env(), **kwargs)
    return time.perf_counter() - t0


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def write_exams(cohort: Path, study: list[str], root: Path) -> dict[str, dict]:
    """One DICOM cine folder per study patient under `root`; {pid: {"phases", "es", "layout"}}."""
    import logging

    import pandas as pd
    import SimpleITK as sitk

    import dicom_fixtures as F

    logging.getLogger("highdicom").setLevel(logging.ERROR)  # legacy conversion: "WindowWidth omitted", per file
    manifest = pd.read_csv(cohort / "manifest.csv", dtype={"patient_id": str}).set_index("patient_id")
    truth = {}
    for i, pid in enumerate(study):
        n_phases, es = CINES[i % len(CINES)]
        layout = F.LAYOUTS[i % len(F.LAYOUTS)]
        ed = sitk.ReadImage(str(cohort / manifest.loc[pid, "ed_image"]))
        mask = sitk.ReadImage(str(cohort / manifest.loc[pid, "ed_mask"]))
        phases = F.contracting_cine(ed, mask, n_phases, es)
        F.write_cine_from_images(root / pid, phases, layout)
        truth[pid] = {"phases": n_phases, "ed": 0, "es": es, "layout": layout,
                      "ed_pixels": sitk.GetArrayFromImage(phases[0]), "es_pixels": sitk.GetArrayFromImage(phases[es])}
    return truth


def write_labels(cohort: Path, study: list[str], truth: dict, path: Path, with_es: bool) -> Path:
    import pandas as pd

    table = pd.read_csv(cohort / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["patient_id"].isin(study)].drop(columns=list(CLINICAL_DROP))
    if with_es:
        table["es_phase"] = [truth[p]["es"] for p in table["patient_id"]]
    table.to_csv(path, index=False)
    return path


def write_masks_only(cohort: Path, pids: list[str], out: Path) -> Path:
    """The `pids`' NIfTI stacks and manual masks as a masks-only cohort (segmentation.extra_cohorts)."""
    import pandas as pd

    table = pd.read_csv(cohort / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["patient_id"].isin(pids)][["patient_id", "center", "vendor", *CLINICAL_DROP]]
    for col in CLINICAL_DROP:
        for rel in table[col]:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cohort / rel, out / rel)
    table.to_csv(out / "manifest.csv", index=False)
    return out


def compare_phases(imported: Path, truth: dict) -> dict:
    """ED/ES picked vs truth (phase_selection.csv) and the written NIfTI vs the cine's phase pixels."""
    import pandas as pd
    import SimpleITK as sitk

    sel = pd.read_csv(imported / "phase_selection.csv", dtype={"patient_id": str})
    manifest = pd.read_csv(imported / "manifest.csv", dtype=str, keep_default_na=False).set_index("patient_id")
    out = {"ed_right": 0, "es_right": 0, "es_within_one": 0, "pixels_identical": 0, "n": len(truth),
           "ed_method": sorted(sel["ed_method"].unique()), "es_method": sorted(sel["es_method"].unique()),
           "misses": [], "masks_written": int((manifest["ed_mask"] != "").sum())}
    for pid, t in truth.items():
        rows = sel[sel["patient_id"] == pid]
        ed = int(rows.loc[rows["is_ed"] == 1, "phase"].iloc[0])
        es = int(rows.loc[rows["is_es"] == 1, "phase"].iloc[0])
        out["ed_right"] += ed == t["ed"]
        out["es_right"] += es == t["es"]
        out["es_within_one"] += abs(es - t["es"]) <= 1
        if ed != t["ed"] or es != t["es"]:
            out["misses"].append(f"{pid} ({t['layout']}, {t['phases']} phases): ED {ed}/{t['ed']}, ES {es}/{t['es']}")
        same = all(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(imported / manifest.loc[pid, col]))),
                                  t[key]) for col, key in (("ed_image", "ed_pixels"), ("es_image", "es_pixels")))
        if ed == t["ed"] and es == t["es"]:
            out["pixels_identical"] += same
    return out


def print_phases(label: str, c: dict) -> None:
    print(f"{label}: ED right in {c['ed_right']} of {c['n']} ({', '.join(c['ed_method'])}); ES right in "
          f"{c['es_right']} of {c['n']}, within one phase in {c['es_within_one']} ({', '.join(c['es_method'])}); "
          f"ED and ES NIfTI pixels identical to the cine's in {c['pixels_identical']}; masks written for "
          f"{c['masks_written']}")
    for m in c["misses"]:
        print(f"    miss: {m}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cinescar-dicom-study"),
                    help="everything is written here (default /tmp/cinescar-dicom-study; emptied first)")
    ap.add_argument("--internal", type=int, default=18, help="internal study patients (default 18, as .test)")
    ap.add_argument("--external", type=int, default=4, help="external study patients (default 4, as .test)")
    ap.add_argument("--masks-only", type=int, default=10, help="contoured patients that only train the segmenter")
    ap.add_argument("--epochs", type=int, default=30, help="segmentation.max_epochs and patience (.test: 1)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-workflow", action="store_true", help="stop after the import and validation")
    ap.add_argument("--no-reimport", action="store_true", help="skip the import with the run's bundle")
    args = ap.parse_args(argv)

    import pandas as pd

    from cinescar.cohort.synth import generate_cohort

    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    venv = REPO / ".venv/bin"
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"start: {uptime()}")

    t = time.perf_counter()
    synth = work / "synthetic"
    generate_cohort(synth, n_internal=args.internal + args.masks_only, n_external=args.external, seed=args.seed,
                    write_truth=False)
    manifest = pd.read_csv(synth / "manifest.csv", dtype={"patient_id": str})
    internal = manifest.loc[manifest["cohort"] == "internal", "patient_id"].tolist()
    external = manifest.loc[manifest["cohort"] != "internal", "patient_id"].tolist()
    study, masks_only = internal[:args.internal] + external, internal[args.internal:]
    root = work / "exams"
    truth = write_exams(synth, study, root)
    n_files = sum(1 for p in root.rglob("*.dcm"))
    layouts = pd.Series([t["layout"] for t in truth.values()]).value_counts().to_dict()
    print(f"synthetic DICOM exams: {len(study)} patients ({len(internal[:args.internal])} internal, "
          f"{len(external)} external; {sum(manifest.set_index('patient_id').loc[study, 'lge'])} LGE+), "
          f"{n_files} files, layouts {layouts}, cines {sorted({(t['phases'], t['es']) for t in truth.values()})} "
          f"(phases, ES) ({time.perf_counter() - t:.0f} s to write)")
    labels = write_labels(synth, study, truth, work / "labels.csv", with_es=True)

    cohort = work / "cohort"
    t_import = run([venv / "cinescar", "import-dicom", root, "--out", cohort, "--labels", labels],
                   stdout=subprocess.DEVNULL)
    summary = json.loads((cohort / "import_summary.json").read_text())
    print(f"import-dicom: {summary['imported']} patients imported in {t_import:.1f} s wall "
          f"({summary['seconds']:.1f} s inside the importer)")
    try:  # against the config the workflow runs (.test's splits: 3 folds)
        t_validate = run([venv / "cinescar", "validate", cohort, "--config", REPO / ".test/config.yaml"],
                         stdout=subprocess.DEVNULL)
        print(f"validate: passed in {t_validate:.1f} s")
    except subprocess.CalledProcessError:
        print("validate: FAILED (its message above)")
        if not args.no_workflow:
            raise
    print_phases("phases (no segmenter; es_phase given in labels.csv)", compare_phases(cohort, truth))
    if args.no_workflow:
        print(f"end: {uptime()}")
        return 0

    extra = write_masks_only(synth, masks_only, work / "masks_only")
    override = work / "dicom_study.yaml"
    override.write_text(json.dumps({
        "cohort": {"path": str(cohort), "synthetic": False, "name": "dicom-import"},
        "segmentation": {"masks": "predicted", "extra_cohorts": [str(extra)], "channels": [8, 16, 32], "crop": 96,
                         "max_epochs": args.epochs, "patience": args.epochs, "learning_rate": 0.003},
    }) + "\n")
    print(f"override {override.name}: {override.read_text().strip()}")
    run_dir = work / "run"
    log_path = work / "workflow.log"
    try:
        with open(log_path, "w") as log:
            t_flow = run([venv / "snakemake", "--cores", args.cores, "--configfile", REPO / ".test/config.yaml",
                          override, "--directory", run_dir, "--snakefile", REPO / "Snakefile"], cwd=REPO,
                         stdout=log, stderr=subprocess.STDOUT)
    except subprocess.CalledProcessError:
        print(f"workflow FAILED; last lines of {log_path}:")
        print("\n".join(log_path.read_text().splitlines()[-60:]))
        raise
    report, bundle = run_dir / "results/report/report.html", run_dir / "results/bundle/bundle.json"
    print(f"workflow: {t_flow / 60:.1f} min wall on {args.cores} cores; report.html "
          f"{'exists (%d kB)' % (report.stat().st_size // 1024) if report.is_file() else 'MISSING'}; bundle.json "
          f"{'exists' if bundle.is_file() else 'MISSING'}")
    from cinescar.evaluation.report_segmentation import mask_sources_table

    index = pd.read_parquet(run_dir / "results/preprocess/index.parquet")
    print("mask source per cohort role (the report's table):")
    print(mask_sources_table(index).to_string(index=False))
    qc = run_dir / "results/segmentation/qc.csv"
    if qc.is_file():
        print("segmentation QC flags (results/segmentation/qc.csv):")
        print(pd.read_csv(qc).to_string(index=False))

    if not args.no_reimport:
        labels2 = write_labels(synth, study, truth, work / "labels_no_es.csv", with_es=False)
        cohort2 = work / "cohort_bundle"
        try:
            t2 = run([venv / "cinescar", "import-dicom", root, "--out", cohort2, "--labels", labels2, "--bundle",
                      run_dir / "results/bundle"], stdout=subprocess.DEVNULL)
            print(f"import-dicom --bundle (the run's segmenter picks ES, writes masks): {t2:.1f} s wall")
            print_phases("phases (the run's bundle segmenter)", compare_phases(cohort2, truth))
        except subprocess.CalledProcessError as exc:
            print(f"import-dicom --bundle failed (exit {exc.returncode}); see its message above")
    print(f"end: {uptime()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
