"""Runs of the whole workflow on the tiny `.test` study, shared by the tests that need one.

One local run per test session (`killed_then_resumed`): the end-to-end tests check resumption and outputs on
it, and the SLURM test compares a cluster run of the same config against it, so CI pays for it once."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"


def snakemake(workdir: Path, *args: str, timeout: int = 1800, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
           *args, "--configfile", str(TEST_CONFIG), *kwargs.pop("configfiles", [])]
    return subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout, **kwargs)


def planned_jobs(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    jobs = {}
    block = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


@pytest.fixture(scope="session")
def killed_then_resumed(tmp_path_factory):
    """Start the workflow, kill it (SIGKILL, whole process group) once DL training of fold 1 has begun,
    then run it again to completion. Returns (run directory, {file: mtime} before the resume, resume plan).

    Once per test run, also under pytest-xdist: the end-to-end tests and the SLURM test run in different workers
    (tests/conftest.py), and the first of them to ask builds the run in the folder all workers of this run share
    (the parent of each worker's base temp folder) while the other waits for it on a file lock and reads it."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _killed_then_resumed(tmp_path_factory.mktemp("e2e"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, one per pytest invocation
    record = shared / "e2e-run.json"
    with open(shared / "e2e-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        if not record.exists():
            try:
                work, done_before, plan = _killed_then_resumed(shared / "e2e")
                saved = {"work": str(work), "done_before": {str(p): t for p, t in done_before.items()}, "plan": plan}
            except BaseException as exc:  # the other worker fails with the same message instead of running it again
                record.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
                raise
            record.write_text(json.dumps(saved))
    saved = json.loads(record.read_text())
    if "error" in saved:
        pytest.fail(f"the shared end-to-end run failed in another worker: {saved['error']}")
    return Path(saved["work"]), {Path(p): t for p, t in saved["done_before"].items()}, saved["plan"]


def _killed_then_resumed(work: Path):
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2",
           "--configfile", str(TEST_CONFIG)]
    first_log = work.parent / f"{work.name}-first-run.log"  # beside the run, so a failure can be read from CI
    with open(first_log, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    trigger = work / "logs" / "dl" / "train_fold1.log"
    deadline = time.time() + 420
    while not trigger.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    if proc.poll() is not None:
        tail = first_log.read_text(encoding="utf-8", errors="replace")[-6000:]
        pytest.fail(f"the workflow ended (exit {proc.returncode}) before it could be killed; its output ends:\n{tail}")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "results/report/report.html").exists()
    done_before = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*")
                   if p.is_file() and "mlflow" not in p.parts}
    # a hard kill leaves Snakemake's lock behind (Ctrl-C does not); --unlock is the documented first step
    assert snakemake(work, "--unlock").returncode == 0
    plan = snakemake(work, "-n", "--rerun-incomplete")
    resumed = snakemake(work, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return work, done_before, planned_jobs(plan.stdout + plan.stderr)
