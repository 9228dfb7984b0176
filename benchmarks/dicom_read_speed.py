"""Benchmark: wall time to read a 10-slice x 25-phase DICOM cine (250 classic files) and pick ED/ES.

    PYTHONPATH=src .venv/bin/python benchmarks/dicom_read_speed.py [--slices 10] [--phases 25] [--size 192]
        [--repeats 3] [--layout one_series|series_per_slice|enhanced]

The exam is written once with pydicom into a temporary folder (the synthetic cine of the tests, at
--size pixels), then read `--repeats` times in this process (imports excluded; the first read counts the
files' first pass through the OS cache). Reported per read: the header scan + stacking, the pixel decoding,
and ED/ES selection with the tests' toy volume function (a real segmenter's cost comes on top), with the
machine. Goal (issue 23): the whole screen of such an exam in <= 10 s on one core after start-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
from screen_speed import machine  # noqa: E402  (one description of the machine for every benchmark)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--phases", type=int, default=25)
    parser.add_argument("--size", type=int, default=192, help="rows = columns of each image")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layout", choices=("one_series", "series_per_slice", "enhanced"), default="one_series")
    args = parser.parse_args(argv)
    if args.phases < 2 or args.slices < 1:
        parser.error("a cine needs --phases >= 2 (ED and ES differ) and --slices >= 1")

    import dicom_fixtures as F

    F.SIZE = args.size  # the fixtures draw at this matrix
    from cinescar.dicom.phases import select_phases
    from cinescar.dicom.reader import read_cine

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "P001"
        t0 = time.perf_counter()
        es = max(1, args.phases // 3)  # ES after ED (phase 0); phases // 3 alone is 0 for 2 phases
        if args.layout == "enhanced":
            exam = F.write_enhanced(folder, args.slices, args.phases, es)
        else:
            exam = F.write_classic(folder, n_slices=args.slices, n_phases=args.phases, es=es,
                                   series_per_slice=args.layout == "series_per_slice")
        n_files = len(exam.files)
        print(f"wrote {n_files} file(s) ({args.layout}, {args.slices} slices x {args.phases} phases, "
              f"{args.size}x{args.size}) in {time.perf_counter() - t0:.1f} s")
        reads, selects = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            cine = read_cine(folder, "P001")
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            sel = select_phases(cine, lv_volume_ml=F.toy_lv_volume_ml)
            selects.append(time.perf_counter() - t)
        assert (sel.ed, sel.es) == (0, es), (sel.ed, sel.es)
        print(f"machine: {machine()}")
        print(f"read_cine (headers, stacking, decoding {n_files} file(s)): median {statistics.median(reads):.2f} s "
              f"(runs: {', '.join(f'{r:.2f}' for r in reads)})")
        print(f"select_phases (toy volume on 3 mid slices x {args.phases} phases): median "
              f"{statistics.median(selects) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
