"""How long the synthetic cohort takes to generate: the default (60 + 20) and the paper's size (759 + 100).

Usage:
    python benchmarks/synth_cohort.py                 # default cohort measured, paper size projected
    python benchmarks/synth_cohort.py --paper         # paper size measured as well (minutes)
    python benchmarks/synth_cohort.py --workers 2     # with parallel rendering

Prints the machine (platform, CPU count, load), wall and CPU seconds, seconds per patient and disk size.
No assertion: machines are noisy; the numbers go into docs/synthetic-cohort.md with the machine named.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from cinescar.cohort.synth import generate_cohort


def _du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _run(n_internal: int, n_external: int, workers: int, root: Path) -> dict:
    out = root / f"cohort_{n_internal}_{n_external}"
    t0, c0 = time.perf_counter(), time.process_time()
    generate_cohort(out, n_internal=n_internal, n_external=n_external, seed=42, workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = _du(out)
    shutil.rmtree(out)
    n = n_internal + n_external
    return {"patients": n, "wall_s": wall, "cpu_s": cpu, "s_per_patient": wall / n, "MB": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paper", action="store_true", help="also measure the paper-size cohort (759 + 100)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, workers={args.workers}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        d = _run(60, 20, args.workers, root)
        print(f"default cohort (60 + 20): {d['wall_s']:.1f} s wall, {d['cpu_s']:.1f} s CPU (main process), "
              f"{d['s_per_patient']:.2f} s/patient, {d['MB']:.0f} MB")
        if args.paper:
            p = _run(759, 100, args.workers, root)
            print(f"paper cohort (759 + 100): {p['wall_s']:.1f} s wall ({p['wall_s'] / 60:.1f} min), "
                  f"{p['cpu_s']:.1f} s CPU, {p['s_per_patient']:.2f} s/patient, {p['MB']:.0f} MB")
        else:
            print(f"paper cohort (759 + 100), projected from the default run: "
                  f"{d['s_per_patient'] * 859:.0f} s ({d['s_per_patient'] * 859 / 60:.1f} min), "
                  f"about {d['MB'] / 80 * 859:.0f} MB")


if __name__ == "__main__":
    main()
