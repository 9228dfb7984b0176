"""The whole workflow on a tiny synthetic cohort: it completes, a killed run resumes without redoing finished
work, and a changed config value reruns only the rules that depend on it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

# the run itself is shared with the SLURM test (one local run per session): tests/workflow_runs.py
from workflow_runs import planned_jobs, snakemake

pytestmark = pytest.mark.slow


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
    from cinescar.models import MODELS

    assert set(metrics["model"]) == set(MODELS)  # the paper's three, clinical, combined, controls
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
