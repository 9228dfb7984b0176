"""benchmarks/cluster_projection.py: the log parser and the replay of Snakemake's scheduling on hand-made DAGs whose
makespans are known."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("cluster_projection", REPO / "benchmarks" / "cluster_projection.py")
cp = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = cp  # dataclasses look their module up there
spec.loader.exec_module(cp)


def job(i, rule, seconds, inputs=(), outputs=None, priority=0, threads=1):
    return cp.Job(jobid=i, rule=rule, inputs=list(inputs), outputs=outputs or [f"{rule}.out"], priority=priority,
                  threads=threads, seconds=seconds)


def makespan(jobs, cores, **kw):
    return cp.simulate(jobs, cp.dependencies(jobs), cores, **kw).makespan


def test_diamond_on_one_and_two_cores():
    # a -> (b, c) -> d: 1 core runs everything in a row, 2 cores run b beside c (critical path a, c, d)
    jobs = [job(1, "a", 10), job(2, "b", 20, ["a.out"]), job(3, "c", 30, ["a.out"]),
            job(4, "d", 5, ["b.out", "c.out"])]
    assert makespan(jobs, 1) == 65
    assert makespan(jobs, 2) == 45
    assert [j.rule for j in cp.critical_path(jobs, cp.dependencies(jobs))] == ["a", "c", "d"]


def test_priority_puts_the_critical_chain_first():
    # chain p1 -> p2 -> p3 (50 s each) and two independent 100-s jobs on 2 cores: with the chain's priority it runs
    # beside them (200 s); without, the two long jobs go first by job id and the chain trails them (250 s)
    def dag(prio):
        return [job(1, "long", 100), job(2, "other", 100),
                job(3, "p1", 50, priority=prio), job(4, "p2", 50, ["p1.out"], priority=prio),
                job(5, "p3", 50, ["p2.out"], priority=prio)]

    assert makespan(dag(10), 2) == 200
    assert makespan(dag(0), 2) == 250


def test_threads_are_claimed_and_scaled_down_to_the_cores():
    jobs = [job(1, "wide", 10, threads=2), job(2, "u", 10), job(3, "v", 10)]
    assert makespan(jobs, 2) == 20  # the 2-thread job holds both cores, then u and v run side by side
    assert makespan(jobs, 1) == 30  # on 1 core it is scaled down to 1 thread, as Snakemake does
    assert makespan(jobs, 4) == 10


def test_dl_jobs_on_gpu_nodes_leave_the_cores_free():
    jobs = [job(1, "dl_train", 100), job(2, "radiomics_extract", 100)]
    assert makespan(jobs, 1) == 200
    assert makespan(jobs, 1, gpu_speedup=4.0) == 100  # 25 s on its GPU node beside the 100-s CPU job
    assert makespan([job(1, "dl_train", 100), job(2, "dl_train", 100, outputs=["x"])], 8, gpu_speedup=4.0,
                    gpus=1) == 50


LOG = """Provided cores: 2
[Fri Dec  4 00:49:48 2026]
localcheckpoint synth_cohort:
    output: results/cohort/manifest.csv
    jobid: 7
    benchmark: results/benchmarks/cohort/synth.tsv
    reason: Missing output files: results/cohort/manifest.csv
    threads: 2
    resources: tmpdir=/tmp
[Fri Dec  4 00:49:55 2026]
Finished jobid: 7 (Rule: synth_cohort)
1 of 2 steps (50%) done

[Fri Dec  4 00:49:55 2026]
rule dl_train:
    input: results/cohort/manifest.csv, results/preprocess/store/images.npy
    output: results/dl/fold1/predictions.parquet
    jobid: 3
    reason: Missing output files: results/dl/fold1/predictions.parquet
    wildcards: fold=1
    priority: 10
    resources: tmpdir=/tmp
[Fri Dec  4 00:50:05 2026]
Finished jobid: 3 (Rule: dl_train)
"""


def test_the_log_gives_jobs_dependencies_and_times(tmp_path):
    jobs, cores = cp.parse_log(LOG)
    assert cores == 2
    synth, train = sorted(jobs, key=lambda j: j.jobid, reverse=True)
    assert (synth.rule, synth.threads, synth.priority, synth.end - synth.start) == ("synth_cohort", 2, 0, 7)
    assert (train.rule, train.threads, train.priority, train.wildcards) == ("dl_train", 1, 10, {"fold": "1"})
    assert cp.dependencies(jobs) == {3: {7}, 7: set()}
    bench = tmp_path / "results/benchmarks/cohort/synth.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tcpu_time\n5.5\t0:00:05\t100\t5.0\n")
    assert cp.measured_overhead(tmp_path, jobs) == pytest.approx(1.5)  # 7 s in the log, 5.5 s benchmarked
    timed = {j.rule: j.seconds for j in cp.assign_durations(tmp_path, jobs, overhead=1.5)}
    assert timed == {"synth_cohort": 7.0, "dl_train": 10.0}  # benchmark + overhead; the log where none
