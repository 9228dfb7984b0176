"""What N cores (or GPU nodes for the CNN) would give a finished run: its DAG replayed on N cores.

    .venv/bin/python benchmarks/cluster_projection.py --run-dir runs/small --cores 2,16,64,256
    .venv/bin/python benchmarks/cluster_projection.py --run-dir runs/small --cores 2,16,64,256 --gpu-dl-speedup 8
    .venv/bin/python benchmarks/cluster_projection.py --run-dir runs/small --cores 2,16,64,256 --scale-to-paper

The DAG is the one Snakemake itself printed while it ran the study: the run's log
(`<run>/.snakemake/log/*.snakemake.log`, the newest; `--log` names another) holds one block per job with its rule,
input and output files, `benchmark:` file, wildcards, `priority:` and `threads:` (Snakemake prints a priority only
when it is not 0 and threads only when not 1, and had already scaled threads down to the run's `--cores`).
A job depends on every job whose output is one of its inputs (or a folder holding one). Use a run made in one
go: after a resumed run the newest log lists only the resumed jobs.

Each job lasts its measured wall time: the `s` column of its `benchmark:` file under results/benchmarks/; a
job without one (gathers, choices, baselines, the report) lasts what the log shows between its start and its
"Finished" line (1-s timestamps). Every job also pays `--job-overhead` seconds (default: measured on the run,
the median of log time minus benchmark time over the jobs that have both: Snakemake's own work per job).

The replay schedules as Snakemake's default (ILP) scheduler does on N cores: whenever a job ends, it starts,
from the jobs whose inputs are all done, the set that maximises first the sum of priorities and then the
cores used (`--scheduler greedy` also takes priority first), ties going to the lower job id; a job claims
min(threads, N) cores. With `--gpu-dl-speedup X` the DL jobs (dl_tune, dl_train) run X times faster on GPU
nodes of their own (`--gpus`, default one per DL job) and claim no CPU cores. Files are assumed shared and
instant (no staging, no queue wait, no node start-up): on a real cluster every job also waits in the queue.

It prints, per core count, the makespan, the work/N and critical-path bounds, the mean busy cores, and the
critical path with its longest job (what bounds a large partition). With the run's own core count it also
prints the run's measured span (first job start to last job end, from the log) and the projection's error.

`--scale-to-paper` first rescales the run to the paper's cohort (759 + 100 patients, 16,485 images in five
centres of 6,111 / 3,255 / 2,754 / 2,427 / 1,938, /work/shared/notes/paper-scale-run.md): every centre's
extraction is re-laid into chunks of `--chunk-images` slices, and every job's time is multiplied by what
drives it (see SCALE_BY). That is a projection from per-job costs measured at a smaller size, not a
measurement: say so wherever its numbers go.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

GPU_RULES = ("dl_tune", "dl_train")

# paper size (paper-scale-run.md): patients, images, and the five centres' images, largest first
PAPER = {"patients": 859, "internal": 759, "external": 100, "images": 16485,
         "centre_images": [6111, 3255, 2754, 2427, 1938]}

# what each rule's time grows with when the cohort grows: "patients", "internal" (development patients),
# "images" (all images), "centre" (the job's centre's images), "chunk" (fitted start-up + per-image cost of the
# extraction chunks), "const"
SCALE_BY = {
    "synth_cohort": "patients", "validate_cohort": "patients", "import_acdc": "patients",
    "preprocess_center": "centre", "preprocess_gather": "images",
    "radiomics_extract": "chunk", "radiomics_gather": "images",
    "split_patients": "const", "mlflow_init": "const",
    "radiomics_fold": "internal", "radiomics_choose": "const",
    "dl_tune": "internal", "dl_train": "internal", "dl_gather": "images",
    "fusion_fold": "internal", "fusion_choose": "const",
    "baselines_clinical": "internal", "baselines_combined": "internal",
    "baselines_shape_control": "images", "baselines_slice_control": "images",
    "evaluate": "patients", "report": "patients", "bundle": "const", "all": "const",
}

# Job wall time per rule measured at the paper's size on a quiet 2-core machine (docs/performance.md section 4,
# the run with the CNN path first, 1c45388: per stage, the sum over its jobs): with --paper-stage-times these
# replace the scaled times of these rules, spread over a rule's jobs by their images (extraction, preprocessing)
# or evenly (folds). Rules not listed keep this run's own time, unscaled (small rules: gathers, baselines, choices,
# report; no paper-size figure exists for them).
PAPER_STAGE_SECONDS = {"synth_cohort": 105, "preprocess_center": 187, "dl_tune": 66, "dl_train": 1882,
                       "radiomics_extract": 2209, "radiomics_gather": 5, "radiomics_fold": 57, "fusion_fold": 314,
                       "evaluate": 19, "bundle": 15}  # evaluation + bundle 34 s, split as in the small run

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
HEAD = re.compile(r"^(local)?(rule|checkpoint) (\w+):$")
ITEM = re.compile(r"^    (\w+): (.*)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
CORES = re.compile(r"^Provided cores: (\d+)")


@dataclass
class Job:
    jobid: int
    rule: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None
    wildcards: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    threads: int = 1
    start: float | None = None  # log timestamps, seconds since the epoch
    end: float | None = None
    seconds: float = 0.0  # the duration the replay uses

    @property
    def name(self) -> str:
        wc = ",".join(f"{k}={v}" for k, v in self.wildcards.items())
        return f"{self.rule}[{wc}]" if wc else self.rule


def parse_log(text: str) -> tuple[list[Job], int | None]:
    """The jobs of a Snakemake log (or of a dry run's output, which has no timestamps), and its --cores."""
    jobs: dict[int, Job] = {}
    stamp = None
    cores = None
    current: Job | None = None
    for line in text.splitlines():
        if m := CORES.match(line):
            cores = int(m.group(1))
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
            current = None
            continue
        if m := HEAD.match(line):
            current = Job(jobid=-1, rule=m.group(3))
            current.start = stamp
            continue
        if current is not None and (m := ITEM.match(line)):
            key, value = m.groups()
            if key in ("input", "output"):
                setattr(current, f"{key}s", [v for v in value.split(", ") if v])
            elif key == "jobid":
                current.jobid = int(value)
                jobs[current.jobid] = current  # a job printed twice (a rerun) keeps its last block
            elif key == "benchmark":
                current.benchmark = value
            elif key == "wildcards":
                current.wildcards = dict(kv.split("=", 1) for kv in value.split(", "))
            elif key in ("priority", "threads"):
                setattr(current, key, int(value))
            continue
        current = None
        if (m := FINISHED.match(line)) and int(m.group(1)) in jobs:
            jobs[int(m.group(1))].end = stamp
    return sorted(jobs.values(), key=lambda j: j.jobid), cores


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """jobid -> the jobids whose outputs it reads (an output folder counts for every file below it)."""
    producer = {out.rstrip("/"): j.jobid for j in jobs for out in j.outputs}
    deps = {}
    for j in jobs:
        found = set()
        for f in j.inputs:
            p = f.rstrip("/")
            while p:
                if p in producer and producer[p] != j.jobid:
                    found.add(producer[p])
                    break
                p = p.rpartition("/")[0]
        deps[j.jobid] = found
    return deps


def benchmark_seconds(run_dir: Path, job: Job) -> float | None:
    if not job.benchmark:
        return None
    tsv = run_dir / job.benchmark
    if not tsv.exists():
        return None
    lines = tsv.read_text(encoding="utf-8").splitlines()
    header, last = lines[0].split("\t"), lines[-1].split("\t")
    return float(last[header.index("s")])


def measured_overhead(run_dir: Path, jobs: list[Job]) -> float:
    gaps = [j.end - j.start - b for j in jobs if j.start is not None and j.end is not None
            and (b := benchmark_seconds(run_dir, j)) is not None]
    return max(0.0, statistics.median(gaps)) if gaps else 0.0


def assign_durations(run_dir: Path, jobs: list[Job], overhead: float) -> list[Job]:
    out = []
    for j in jobs:
        b = benchmark_seconds(run_dir, j)
        if b is not None:
            seconds = b + overhead
        elif j.start is not None and j.end is not None:
            seconds = j.end - j.start  # already includes Snakemake's own time for the job
        else:
            seconds = overhead
        out.append(replace(j, seconds=seconds))
    return out


@dataclass
class Schedule:
    cores: int
    start: dict[int, float]
    end: dict[int, float]

    @property
    def makespan(self) -> float:
        return max(self.end.values(), default=0.0)


def _select(ready: list[Job], free: int, cores: int) -> list[Job]:
    """The ILP's choice: max sum of priorities, then max cores used, within `free` cores (0/1 knapsack)."""
    big = cores + 1
    best = [(0, ()) for _ in range(free + 1)]  # capacity -> (value, chosen indices)
    for i, job in enumerate(ready):
        w = min(job.threads, cores)
        v = job.priority * big + w
        for c in range(free, w - 1, -1):
            cand = best[c - w][0] + v
            if cand > best[c][0]:
                best[c] = (cand, best[c - w][1] + (i,))
    return [ready[i] for i in best[free][1]]


def simulate(jobs: list[Job], deps: dict[int, set[int]], cores: int, gpu_speedup: float | None = None,
             gpus: int | None = None) -> Schedule:
    """Event-driven replay: at time 0 and whenever jobs end, start the selected ready jobs."""
    by_id = {j.jobid: j for j in jobs}
    on_gpu = {j.jobid for j in jobs if gpu_speedup and j.rule in GPU_RULES}
    gpu_cap = gpus if gpus else max(len(on_gpu), 1)
    dur = {j.jobid: j.seconds / gpu_speedup if j.jobid in on_gpu else j.seconds for j in jobs}
    waiting = {j.jobid: set(deps[j.jobid]) for j in jobs}
    done: set[int] = set()
    running: dict[int, float] = {}  # jobid -> end time
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    now, free, free_gpu = 0.0, cores, gpu_cap
    while len(done) < len(jobs):
        ready = [by_id[i] for i in sorted(waiting) if not waiting[i] and i not in running]
        for job in [j for j in ready if j.jobid in on_gpu][:free_gpu]:
            start[job.jobid], running[job.jobid] = now, now + dur[job.jobid]
            free_gpu -= 1
        cpu_ready = [j for j in ready if j.jobid not in on_gpu]
        if cpu_ready and free > 0:
            for job in _select(cpu_ready, free, cores):
                start[job.jobid], running[job.jobid] = now, now + dur[job.jobid]
                free -= min(job.threads, cores)
        for i in start:
            waiting.pop(i, None)
        if not running:
            raise ValueError(f"no job can start at {now:.1f} s: a cycle, or a job needing more than {cores} cores")
        now = min(running.values())
        for i in [i for i, t in running.items() if t <= now]:
            del running[i]
            end[i] = now
            done.add(i)
            if i in on_gpu:
                free_gpu += 1
            else:
                free += min(by_id[i].threads, cores)
            for w in waiting.values():
                w.discard(i)
    return Schedule(cores=cores, start=start, end=end)


def critical_path(jobs: list[Job], deps: dict[int, set[int]], gpu_speedup: float | None = None) -> list[Job]:
    """The longest chain of dependent jobs (the makespan on unlimited cores)."""
    by_id = {j.jobid: j for j in jobs}

    def d(j: Job) -> float:
        return j.seconds / gpu_speedup if gpu_speedup and j.rule in GPU_RULES else j.seconds

    finish: dict[int, float] = {}
    prev: dict[int, int | None] = {}
    order, seen = [], set()

    def visit(i: int):  # topological order without recursion limits mattering at ~100 jobs
        if i in seen:
            return
        seen.add(i)
        for k in deps[i]:
            visit(k)
        order.append(i)

    for j in jobs:
        visit(j.jobid)
    for i in order:
        best = max(deps[i], key=lambda k: finish[k], default=None)
        finish[i] = (finish[best] if best is not None else 0.0) + d(by_id[i])
        prev[i] = best
    last = max(finish, key=finish.get)
    path = []
    while last is not None:
        path.append(by_id[last])
        last = prev[last]
    return path[::-1]


# ---- rescaling a run to the paper's cohort ------------------------------------------------------------------

def _chunk_fit(chunks: list[Job], images: dict[int, int]) -> tuple[float, float]:
    """seconds = a + b * images over the run's extraction chunks (least squares; b alone if one size)."""
    xs = [images[j.jobid] for j in chunks]
    ys = [j.seconds for j in chunks]
    if len(set(xs)) < 2:
        return 0.0, sum(ys) / max(sum(xs), 1)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return max(my - b * mx, 0.0), b


def scale_to_paper(jobs: list[Job], run_dir: Path, chunk_images: int, calibrate: bool = False
                   ) -> tuple[list[Job], dict]:
    """The run's DAG at the paper's size: extraction re-chunked per centre, every time scaled by its driver."""
    import csv

    from cinescar.radiomics.extract import extraction_chunks

    validate = next(j for j in jobs if j.rule == "validate_cohort")
    manifest = run_dir / validate.inputs[0]
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    patients = len(rows)
    internal = sum(r.get("cohort", "internal") == "internal" for r in rows) or patients
    slices = extraction_chunks(manifest, run_dir / validate.outputs[0], 1)  # {slug: ED + ES slices}
    images = {slug: _rows(run_dir / f"results/preprocess/centers/{slug}/index.parquet") for slug in slices}
    ranked = sorted(images, key=images.get, reverse=True)
    paper_images = dict(zip(ranked, PAPER["centre_images"]))  # the paper's centres by size rank
    if len(ranked) != len(PAPER["centre_images"]):
        raise SystemExit(f"the run has {len(ranked)} centres, the paper's cohort 5: cannot map them")
    ratio = {"patients": PAPER["patients"] / patients, "internal": PAPER["internal"] / internal,
             "images": PAPER["images"] / sum(images.values()), "const": 1.0}
    chunks = [j for j in jobs if j.rule == "radiomics_extract"]
    chunk_imgs = {j.jobid: images[j.wildcards["center"]] / int(j.wildcards["n_chunks"]) for j in chunks}
    a, b = _chunk_fit(chunks, chunk_imgs)
    out, next_id = [], max(j.jobid for j in jobs) + 1
    for j in jobs:
        how = SCALE_BY.get(j.rule, "patients")
        if how == "chunk":
            c = j.wildcards["center"]
            if int(j.wildcards["chunk"]) != 0:
                continue  # each centre is re-laid from its first chunk's block
            n = max(1, math.ceil(paper_images[c] * slices[c] / images[c] / chunk_images))
            for k in range(n):
                out.append(replace(j, jobid=j.jobid if k == 0 else next_id + k - 1,
                                   wildcards={**j.wildcards, "chunk": str(k), "n_chunks": str(n)},
                                   outputs=[f"{o}#paper{k}" for o in j.outputs] if k else j.outputs,
                                   seconds=a + b * paper_images[c] / n))
            next_id += n - 1
            continue
        if how == "centre":
            factor = paper_images[j.wildcards["center"]] / images[j.wildcards["center"]]
        else:
            factor = ratio[how]
        out.append(replace(j, seconds=j.seconds * factor))
    # the gather reads every chunk: give it the new chunks' outputs as inputs
    extra = sorted({o for j in out if j.rule == "radiomics_extract" for o in j.outputs if "#paper" in o})
    out = [replace(j, inputs=j.inputs + extra) if j.rule == "radiomics_gather" else j for j in out]
    if calibrate:
        weights = {j.jobid: (paper_images[j.wildcards["center"]] / int(j.wildcards["n_chunks"])
                             if j.rule == "radiomics_extract" else paper_images[j.wildcards["center"]]
                             if j.rule == "preprocess_center" else 1.0) for j in out}
        totals = {r: sum(weights[j.jobid] for j in out if j.rule == r) for r in PAPER_STAGE_SECONDS}
        unscaled = {j.jobid: j.seconds for j in jobs}
        out = [replace(j, seconds=PAPER_STAGE_SECONDS[j.rule] * weights[j.jobid] / totals[j.rule])
               if j.rule in PAPER_STAGE_SECONDS else replace(j, seconds=unscaled.get(j.jobid, j.seconds))
               for j in out]
    info = {"patients": patients, "internal": internal, "images": sum(images.values()), "ratio": ratio,
            "chunk_fit": (a, b), "chunks": sum(j.rule == "radiomics_extract" for j in out)}
    return out, info


def _rows(parquet: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(parquet).metadata.num_rows


# ---- command line -------------------------------------------------------------------------------------------

def newest_log(run_dir: Path) -> Path:
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"no Snakemake log under {run_dir}/.snakemake/log: run the workflow there first")
    return logs[-1]


def fmt(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--log", type=Path, action="append",
                    help="the run's Snakemake log (default: the newest in .snakemake/log); repeat it for a run that "
                         "was resumed: a job in a later log replaces the one with the same outputs")
    ap.add_argument("--cores", default="2,16,64,256", help="comma-separated core counts")
    ap.add_argument("--gpu-dl-speedup", type=float, help="DL jobs on GPU nodes, this many times faster")
    ap.add_argument("--gpus", type=int, help="GPU nodes for the DL jobs (default: one per DL job)")
    ap.add_argument("--job-overhead", type=float, help="seconds added to each benchmarked job (default: measured)")
    ap.add_argument("--measured-wall", type=float, help="the run's wall time in s (e.g. from /usr/bin/time)")
    ap.add_argument("--scale-to-paper", action="store_true", help="rescale the run to the paper's cohort first")
    ap.add_argument("--chunk-images", type=int, default=300, help="extraction chunk size for --scale-to-paper")
    ap.add_argument("--paper-stage-times", action="store_true",
                    help="with --scale-to-paper: the rules measured at the paper's size take those times "
                         "(PAPER_STAGE_SECONDS) instead of this run's scaled ones")
    ap.add_argument("--without", action="append", default=[], metavar="RULE_PREFIX",
                    help="replay as if the jobs of rules starting with this took no time (e.g. segmentation: what "
                         "a stage adds to the makespan of the same run); repeatable")
    ap.add_argument("--finished-only", action="store_true",
                    help="replay only the jobs the log shows finished (a run that was stopped: checks the prefix)")
    args = ap.parse_args(argv)

    logs = args.log or [newest_log(args.run_dir)]
    merged: dict[tuple, Job] = {}
    for log in logs:
        part, run_cores = parse_log(log.read_text(encoding="utf-8", errors="replace"))
        for j in part:
            merged[tuple(j.outputs) or (j.rule,)] = j
    jobs = [replace(j, jobid=i) for i, j in enumerate(merged.values(), 1)] if len(logs) > 1 else list(merged.values())
    log = logs[-1]
    if args.finished_only:
        done = {j.jobid for j in jobs if j.end is not None}
        jobs = [j for j in jobs if j.jobid in done]
    if not jobs:
        raise SystemExit(f"no jobs in {log}")
    overhead = args.job_overhead if args.job_overhead is not None else measured_overhead(args.run_dir, jobs)
    jobs = assign_durations(args.run_dir, jobs, overhead)
    if args.without:  # the dependencies stay; only the time goes (what the stage adds to the makespan)
        dropped = [j for j in jobs if j.rule.startswith(tuple(args.without))]
        print(f"WITHOUT {', '.join(args.without)}: {len(dropped)} jobs ({sum(j.seconds for j in dropped):.0f} s of job "
              "time) replayed as taking no time")
        gone = {j.jobid for j in dropped}
        jobs = [replace(j, seconds=0.0) if j.jobid in gone else j for j in jobs]
    stamps = [t for j in jobs for t in (j.start, j.end) if t is not None]
    span = max(stamps) - min(stamps) if stamps else None
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}")
    print(f"run: {args.run_dir} (log {', '.join(p.name for p in logs)}, --cores {run_cores}); {len(jobs)} jobs, "
          f"{sum(j.seconds for j in jobs):.0f} s of job time; per-job overhead {overhead:.2f} s")
    paper = None
    if args.scale_to_paper:
        jobs, paper = scale_to_paper(jobs, args.run_dir, args.chunk_images, args.paper_stage_times)
        a, b = paper["chunk_fit"]
        print(f"SCALED TO THE PAPER'S SIZE (a projection, not a measurement): {paper['patients']} -> "
              f"{PAPER['patients']} patients, {paper['images']} -> {PAPER['images']} images; extraction chunk = "
              f"{a:.1f} s + {b * 1000:.0f} ms/image, {paper['chunks']} chunks; {len(jobs)} jobs, "
              f"{sum(j.seconds for j in jobs):.0f} s of job time")
    print()
    print("| rule | jobs | job time s | longest job s |")
    print("|---|---|---|---|")
    rules: dict[str, list[float]] = {}
    for j in jobs:
        rules.setdefault(j.rule, []).append(j.seconds)
    for rule, secs in sorted(rules.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {rule} | {len(secs)} | {sum(secs):.0f} | {max(secs):.0f} |")
    deps = dependencies(jobs)
    path = critical_path(jobs, deps, args.gpu_dl_speedup)
    cp = sum(j.seconds / args.gpu_dl_speedup if args.gpu_dl_speedup and j.rule in GPU_RULES else j.seconds
             for j in path)
    work_cpu = sum(j.seconds * j.threads for j in jobs
                   if not (args.gpu_dl_speedup and j.rule in GPU_RULES))
    print()
    print("| cores | makespan | work / cores | critical path | mean busy cores |")
    print("|---|---|---|---|---|")
    for n in [int(c) for c in args.cores.split(",")]:
        sched = simulate(jobs, deps, n, args.gpu_dl_speedup, args.gpus)
        busy = sum((sched.end[j.jobid] - sched.start[j.jobid]) * min(j.threads, n) for j in jobs
                   if not (args.gpu_dl_speedup and j.rule in GPU_RULES)) / sched.makespan
        print(f"| {n} | **{fmt(sched.makespan)}** ({sched.makespan:.0f} s) | {fmt(work_cpu / n)} | {fmt(cp)} | "
              f"{busy:.1f} |")
        if n == run_cores and span and len(logs) == 1 and not args.scale_to_paper and not args.gpu_dl_speedup \
                and not args.without:
            print(f"|   | measured span (log) {span:.0f} s: error {100 * (sched.makespan / span - 1):+.1f} % "
                  + (f"; measured wall {args.measured_wall:.0f} s: error "
                     f"{100 * (sched.makespan / args.measured_wall - 1):+.1f} %" if args.measured_wall else "")
                  + " | | | |")
    print()
    def eff(j: Job) -> float:
        return j.seconds / args.gpu_dl_speedup if args.gpu_dl_speedup and j.rule in GPU_RULES else j.seconds

    longest = max(path, key=eff)
    print(f"critical path ({fmt(cp)}, the makespan on unlimited cores):")
    for j in path:
        print(f"  {eff(j):8.1f} s  {j.name}" + (" (on a GPU node)" if eff(j) != j.seconds else ""))
    print(f"bounding job: {longest.name} ({eff(longest):.0f} s, {100 * eff(longest) / cp:.0f} % of the path)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
