"""Honest core scaling: the same study on one true core, then on two, from empty run directories.

    .venv/bin/python benchmarks/core_scaling.py --out /tmp/scaling                    # default config
    .venv/bin/python benchmarks/core_scaling.py --out /tmp/scaling --configfile .test/config.yaml
    .venv/bin/python benchmarks/core_scaling.py --out /tmp/scaling --only 2           # just time `--cores 2`

Run 1: `taskset -c 0 snakemake --cores 1` with OMP/OpenBLAS/MKL threads pinned to 1 in the environment, so no
BLAS or OpenMP pool can borrow a second core (the rules still take their numeric thread counts from the
config -- `dl.threads`, `fusion.threads` -- so both runs compute the same numbers; under taskset those threads
share the one core). Run 2: `snakemake --cores 2` on cores 0 and 1. Each run's wall time is measured around
snakemake and written to `<run>/run_timing.json`; then benchmarks/workflow_scale.py prints both per-stage
tables from the runs' own benchmark files and the 1 -> 2 ratio.

On a shared machine the figure is an upper bound of the time and a lower bound of the ratio's noise: the
load average before and after each run is printed and recorded with it.
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

REPO = Path(__file__).resolve().parents[1]
PINNED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_study(run_dir: Path, cores: int, cpus: str, configfile: str | None, pin_threads: bool) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    cmd = ["taskset", "-c", cpus, snakemake, "-s", str(REPO / "Snakefile"), "--cores", str(cores),
           "--directory", str(run_dir)]
    if configfile:
        cmd += ["--configfile", str(Path(configfile).resolve())]
    env = {**os.environ, **(PINNED if pin_threads else {})}
    load_before = os.getloadavg()
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(cmd)}" + (" (BLAS/OpenMP threads 1)" if pin_threads else ""),
          flush=True)
    t0 = time.perf_counter()
    with open(run_dir / "snakemake.out", "w") as out:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t0
    timing = {"wall_s": wall, "cores": cores, "cpus": cpus, "pinned_threads": pin_threads, "returncode":
              proc.returncode, "load_before": load_before, "load_after": os.getloadavg(), "command": cmd}
    (run_dir / "run_timing.json").write_text(json.dumps(timing, indent=1))
    print(f"  wall {wall:.0f} s, exit {proc.returncode}, load average {load_before[0]:.1f} -> "
          f"{timing['load_after'][0]:.1f}", flush=True)
    if proc.returncode:
        sys.exit(f"snakemake failed; see {run_dir / 'snakemake.out'}")
    return timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the run directories cores1/ and cores2/")
    ap.add_argument("--configfile", help="extra config file (default: config/config.yaml only)")
    ap.add_argument("--only", choices=["1", "2"], help="run only the 1-core or only the 2-core study")
    args = ap.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin a run to one core")
    if len(os.sched_getaffinity(0)) < 2 and args.only != "1":
        sys.exit("this process may use fewer than 2 CPUs: the 2-core run would not be one")
    out = Path(args.out)
    dirs = []
    if args.only in (None, "1"):
        run_study(out / "cores1", 1, "0", args.configfile, pin_threads=True)
        dirs.append(out / "cores1")
    if args.only in (None, "2"):
        run_study(out / "cores2", 2, "0,1", args.configfile, pin_threads=False)
        dirs.append(out / "cores2")
    report = [sys.executable, str(REPO / "benchmarks" / "workflow_scale.py")]
    for d in dirs:
        report += ["--run-dir", str(d)]
    subprocess.run(report, check=True)


if __name__ == "__main__":
    main()
