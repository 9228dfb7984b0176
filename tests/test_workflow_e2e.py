"""The whole workflow on a tiny synthetic cohort: it completes, a killed run resumes without redoing finished
work, and a changed config value reruns only the rules that depend on it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
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


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """Start the workflow, kill it (SIGKILL, whole process group) once DL training of fold 1 has begun,
    then run it again to completion."""
    work = tmp_path_factory.mktemp("e2e")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2",
           "--configfile", str(TEST_CONFIG)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trigger = work / "logs" / "dl" / "train_fold1.log"
    deadline = time.time() + 420
    while not trigger.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, "the workflow finished or failed before it could be killed"
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


def test_resumed_run_redoes_only_what_is_missing(killed_then_resumed):
    work, done_before, plan = killed_then_resumed
    # finished stages are not planned again
    for rule in ("synth_cohort", "validate_cohort", "preprocess_center", "preprocess_gather", "split_patients",
                 "mlflow_init", "dl_tune"):
        assert rule not in plan, f"{rule} would rerun after the kill: {plan}"
    assert plan.get("dl_train", 0) >= 1 and "all" in plan
    # ...and their files were not rewritten by the resumed run
    synthetic = [p for p in done_before if "preprocess" in p.parts or "splits" in p.parts]
    assert synthetic
    for path in synthetic:
        assert path.stat().st_mtime_ns == done_before[path], f"{path} was rewritten"


def test_outputs_of_the_complete_run(killed_then_resumed):
    work = killed_then_resumed[0]
    report = (work / "results/report/report.html").read_text(encoding="utf-8")
    assert "<img" in report and "DeLong" in report
    for model in ("radiomics", "dl", "fusion"):
        pred = pd.read_parquet(work / f"results/{model}/predictions.parquet")
        assert set(pred["split"]) == {"val", "test", "external"}
        assert pred["prob"].between(0, 1).all()
    metrics = pd.read_csv(work / "results/evaluation/metrics.csv")
    assert set(metrics["model"]) == {"radiomics", "dl", "fusion"}
    final = json.loads((work / "results/evaluation/final_models.json").read_text())
    assert set(final) >= {"radiomics", "dl", "fusion"}
    # nothing left to do
    again = snakemake(work, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_changed_config_reruns_only_dependent_rules(killed_then_resumed, tmp_path):
    work = killed_then_resumed[0]
    changed = tmp_path / "changed.yaml"
    changed.write_text("fusion:\n  k_candidates: [5]\n")
    plan = planned_jobs(snakemake(work, "-n", configfiles=[str(changed)]).stdout)
    assert plan.get("fusion_fold") == 3 and "fusion_choose" in plan and "evaluate" in plan and "bundle" in plan
    for rule in plan:
        assert not rule.startswith(("radiomics", "dl_", "preprocess", "synth", "validate", "split")), plan
