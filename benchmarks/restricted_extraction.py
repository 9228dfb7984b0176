"""Benchmark: would restricted extraction pay in the workflow? (issue 14, docs/performance.md section 1)

    .venv/bin/python benchmarks/restricted_extraction.py --run-dir . --images 30

Only fold-training images (development patients' selected images: each is a training image in 4 of 5 folds)
need every feature. Every other image (validation-only slices, internal test, external) is only predicted,
so it needs only the union of the features that *any* fold's LASSO selected for *any* candidate k, of the
Radiomics model (`results/radiomics/fold*/selected.csv`) and of the fused model
(`results/fusion/fold*/scores.json`): k is chosen after all folds, so every candidate's features are read.
This script reads that union from a finished run, extracts the same images with the full and with the
restricted extractor (`cinescar.radiomics.restricted`), checks the shared features are identical, and prints
CPU seconds per image for both and the share of the run's images that would need only the restricted set,
so the saving is measured, not guessed. One process, CPU time (`time.process_time`), median of repeats.

    .venv/bin/python benchmarks/restricted_extraction.py --job --run-dir R --chunk centre-a:0-of-2 [--before TREE]

`--job` (issue 27) instead prices an extraction *job* against that floor: the in-process CPU per image of one
chunk's images (warm extractor, as above), then the real `radiomics_extract` job of the same chunk, run by
Snakemake from this checkout's Snakefile in a scratch folder (the run's preprocessed store linked in). The job's
CPU is its script process's own (user + system, children included, written at exit by a `sitecustomize`
hook), not the `benchmark:` file's `cpu_time`, which is sampled and misses part of a job. `--before TREE` runs
the job also from another commit's tree (`git archive <commit> Snakefile workflow src config envs | tar -x -C
/tmp/old`, then `--before /tmp/old`: its Snakefile puts its own `src/` first on the job's path) in the same
rounds, so before and after are measured side by side; every job's features must equal the in-process
extraction bit for bit. An empty chunk of the same centre (`--fixed-chunk`) gives each tree's fixed cost per job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cinescar.fusion.model import DL_COLUMN  # noqa: E402
from cinescar.cohort.splits import fold_images  # noqa: E402
from cinescar.preprocessing.store import load_arrays, load_index  # noqa: E402
from cinescar.radiomics.extract import extract_image, make_extractor  # noqa: E402
from cinescar.radiomics.restricted import restricted_extractor  # noqa: E402
from radiomics_extraction import per_image_seconds  # noqa: E402  (the sibling benchmark's timing loop)


def selected_union(results: Path) -> list[str]:
    """Every radiomic feature any fold selected for any candidate k, in either model."""
    names: list[str] = []
    for path in sorted(results.glob("radiomics/fold*/selected.csv")):
        names += pd.read_csv(path)["feature"].astype(str).tolist()
    for path in sorted(results.glob("fusion/fold*/scores.json")):
        for rows in json.loads(path.read_text())["selected"].values():
            names += [r["feature"] for r in rows if not DL_COLUMN.match(r["feature"])]
    return list(dict.fromkeys(names))


HOOK = """import atexit, json, os, resource, sys, time
_T0 = time.time()
def _record():
    if ".snakemake/scripts" not in " ".join(sys.argv):  # the job's script, not Snakemake itself
        return
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["CINESCAR_JOB_CPU_OUT"], "a") as fh:
        fh.write(json.dumps({"cpu": s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime, "wall": time.time() - _T0,
                             "code": sys.modules["cinescar"].__file__}) + "\\n")
atexit.register(_record)
"""


def run_job(tree: Path, store: Path, center: str, target: str, configfile: str | None, work: Path) -> dict:
    """One `radiomics_extract` job by Snakemake in a fresh scratch folder; its CPU, wall and features table."""
    scratch = Path(tempfile.mkdtemp(dir=work))
    (scratch / "results" / "preprocess" / "centers").mkdir(parents=True)
    (scratch / "results" / "preprocess" / "centers" / center).symlink_to(store / "centers" / center)
    (work / "hook").mkdir(exist_ok=True)
    (work / "hook" / "sitecustomize.py").write_text(HOOK)
    record = scratch / "job_cpu.jsonl"
    env = {**os.environ, "PYTHONPATH": str(work / "hook"), "CINESCAR_JOB_CPU_OUT": str(record)}
    cmd = [str(Path(sys.executable).with_name("snakemake")), target, "--cores", "1", "--directory", str(scratch),
           "--snakefile", str(tree / "Snakefile"), "--quiet", "all", "--allowed-rules", "radiomics_extract"]
    if configfile:
        cmd[2:2] = ["--configfile", configfile]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not record.is_file():
        sys.exit(f"the job failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    rec = json.loads(record.read_text().splitlines()[-1])
    bench = pd.read_csv(next((scratch / "results" / "benchmarks").rglob("*.tsv")), sep="\t").iloc[0]
    features = pd.read_parquet(scratch / target)
    shutil.rmtree(scratch)
    if not rec["code"].startswith(str(tree / "src")):
        sys.exit(f"the job ran {rec['code']}, not the code of {tree}")
    return {"cpu": rec["cpu"], "wall": rec["wall"], "bench_s": float(bench["s"]),
            "bench_cpu": float(bench["cpu_time"]), "features": features}


def job_cost(args) -> None:
    """`--job`: one chunk's extraction job against the in-process floor (module docstring)."""
    import radiomics

    from cinescar.radiomics.extract import chunk_rows

    store = Path(args.run_dir).resolve() / "results" / "preprocess"
    center, rest = args.chunk.split(":")
    chunk, n_chunks = (int(x) for x in rest.split("-of-"))
    target = f"results/radiomics/chunks/{center}/{chunk}-of-{n_chunks}.parquet"
    index = load_index(store / "centers" / center / "index.parquet")
    rows = chunk_rows(len(index), n_chunks, chunk)
    part = index.iloc[rows.start:rows.stop].reset_index(drop=True)
    images, masks = load_arrays(part, store)
    n = len(part)
    params = Path(args.params) if args.params else (REPO / "config" / "radiomics.yaml")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"pyradiomics {radiomics.__version__}; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"chunk {args.chunk} of {store}: {n} images; {args.repeats} round(s), each: job(s), then the floor")
    versions = {"after": REPO}
    if args.before:
        versions = {"before": Path(args.before).resolve(), **versions}
    jobs: dict[str, list[dict]] = {k: [] for k in versions}
    fixed: dict[str, list[float]] = {k: [] for k in versions}
    empty = f"results/radiomics/chunks/{center}/{len(index)}-of-{len(index) + 1}.parquet"  # no image
    floors, loads = [], []
    extractor = make_extractor(params)
    extract_image(extractor, images[0], masks[0])  # warm-up, as the floor excludes first-call costs
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, tree in versions.items():
                jobs[name].append(run_job(tree, store, center, target, args.configfile, Path(tmp)))
                fixed[name].append(run_job(tree, store, center, empty, args.configfile, Path(tmp))["cpu"])
            t0 = time.process_time()
            values = [extract_image(extractor, i, m) for i, m in zip(images, masks)]
            floors.append((time.process_time() - t0) / n)
            loads.append(os.getloadavg()[0])
    reference = pd.DataFrame([list(v.values()) for v in values], columns=list(values[0]), dtype=np.float64)
    floor = statistics.median(floors)
    print(f"floor (in one process, warm extractor): {floor:.4f} CPU-s/image (median of "
          f"{', '.join(f'{f:.4f}' for f in floors)}); load average {min(loads):.1f}-{max(loads):.1f} during the rounds")
    for name, runs in jobs.items():
        table = runs[-1]["features"]
        same = all(r["features"].drop(columns="image_id").to_numpy(np.float64).tobytes()
                   == reference.to_numpy(np.float64).tobytes() for r in runs)
        cpu = statistics.median(r["cpu"] / n for r in runs)
        each = ", ".join(f"{r['cpu'] / n:.4f}" for r in runs)
        print(f"job, {name:<6} ({versions[name]}): {cpu:.4f} CPU-s/image = {cpu / floor:.3f}x the floor "
              f"(runs: {each}); job minus floor {statistics.median(r['cpu'] - floor * n for r in runs):.2f} CPU-s, "
              f"of which fixed (an empty chunk's job) {statistics.median(fixed[name]):.2f}; "
              f"wall {statistics.median(r['wall'] / n for r in runs):.4f} s/image; benchmark file: s "
              f"{statistics.median(r['bench_s'] / n for r in runs):.4f}, sampled cpu_time "
              f"{statistics.median(r['bench_cpu'] / n for r in runs):.4f} per image; features equal the "
              f"in-process extraction bit for bit: {same} ({len(table)} x {table.shape[1] - 1})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default=".", help="a finished run (holds results/)")
    ap.add_argument("--params", default=None,
                    help="pyradiomics parameter file (default: this checkout's config/radiomics.yaml)")
    ap.add_argument("--images", type=int, default=30, help="images timed (spread over the run's image index)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--job", action="store_true", help="price one chunk's extraction job against the floor")
    ap.add_argument("--chunk", default="centre-a:0-of-2", help="--job: CENTRE:I-of-N, the chunk to extract")
    ap.add_argument("--configfile", default=None, help="--job: the run's config file (its radiomics section)")
    ap.add_argument("--before", default=None, help="--job: another commit's tree (Snakefile, workflow, src, "
                    "config, envs), whose job runs beside this checkout's")
    args = ap.parse_args()
    if args.job:
        job_cost(args)
        return

    import radiomics

    run = Path(args.run_dir)
    results = run / "results"
    params = Path(args.params) if args.params else (REPO / "config" / "radiomics.yaml")
    union = selected_union(results)
    if not union:
        sys.exit(f"no fold selections under {results}/radiomics or {results}/fusion: run the workflow first")

    index = load_index(results / "preprocess" / "index.parquet")
    splits = json.loads((results / "splits" / "splits.json").read_text())
    train_ids = set()
    for f in splits["folds"]:
        train_ids |= set(fold_images(index, splits, int(f["fold"]))["train"]["image_id"])
    n_full = len(train_ids)
    pick = np.linspace(0, len(index) - 1, min(args.images, len(index))).round().astype(int)
    sample = index.iloc[np.unique(pick)]
    images, masks = load_arrays(sample, results / "preprocess")

    full_ext = make_extractor(params)
    restricted = restricted_extractor(params, union)
    extract_image(full_ext, images[0], masks[0])  # warm-up: imports and first-call costs
    extract_image(restricted, images[0], masks[0])
    t_full = per_image_seconds(full_ext, images, masks, args.repeats)
    t_res = per_image_seconds(restricted, images, masks, args.repeats)
    v_full = [extract_image(full_ext, i, m) for i, m in zip(images, masks)]
    v_res = [extract_image(restricted, i, m) for i, m in zip(images, masks)]
    n_all = len(v_full[0])
    missing = [n for n in union if n not in v_res[0]]
    mismatch = sum(not np.array_equal(np.float64(a[n]), np.float64(b[n]), equal_nan=True)
                   for a, b in zip(v_full, v_res) for n in union if n in b)
    types = sorted({n.split("_", 1)[0] for n in union})

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, pyradiomics {radiomics.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"run: {len(index)} images, {len(splits['folds'])} folds; union of every fold's selections over every "
          f"candidate k (Radiomics + fused): {len(union)} of {n_all} features, {len(types)} image-type prefixes "
          f"({', '.join(types)})")
    print(f"restricted extractor computed {len(v_res[0])} features; union features it lacks: {len(missing)}; "
          f"values differing from the full extraction: {mismatch} of {len(union) * len(v_res)}")
    print(f"CPU s/image over {len(images)} images (median of {args.repeats}): full {t_full:.3f}, restricted "
          f"{t_res:.3f} = {t_res / t_full:.2f}x")
    share = 1 - n_full / len(index)
    saving = share * (1 - t_res / t_full)
    print(f"images needing every feature (fold-training): {n_full} of {len(index)}; only predicted: "
          f"{len(index) - n_full} ({100 * share:.0f} %)")
    print(f"=> restricted extraction of the predicted-only images would save {100 * saving:.0f} % of the "
          f"extraction CPU (before the cost of a second extraction phase and its DAG barrier)")


if __name__ == "__main__":
    main()
