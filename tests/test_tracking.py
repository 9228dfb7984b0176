"""MLflow: nested runs under one parent per config; an unreachable server loses nothing."""

from __future__ import annotations

import json

import pytest

from cinescar import tracking
from cinescar.config import load_config


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_nested_runs_share_one_parent(in_tmp):
    from mlflow.tracking import MlflowClient

    cfg = load_config()
    state = tracking.init_tracking(cfg)
    assert state["reachable"] and (in_tmp / "results/mlflow/mlflow.db").exists()
    for fold in (0, 1):
        with tracking.open_run(cfg, f"radiomics/fold{fold}", {"stage": "radiomics", "fold": fold}) as run:
            run.log_params({"k": 10})
            run.log_metrics({"val_auc": 0.5 + fold / 10})
    client = MlflowClient(tracking.tracking_uri(cfg))
    exp = client.get_experiment_by_name("cinescar-synthetic")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parents = {r.data.tags.get("mlflow.parentRunId") for n, r in runs.items() if n.startswith("radiomics")}
    assert len(parents) == 1 and runs[f"workflow-{tracking.config_hash(cfg)}"].info.run_id in parents
    assert runs["radiomics/fold1"].data.metrics["val_auc"] == pytest.approx(0.6)
    assert runs["radiomics/fold0"].data.tags["fold"] == "0"


def test_unreachable_server_falls_back_to_local_json(in_tmp, caplog):
    cfg = load_config(overrides={"mlflow": {"tracking_uri": "http://127.0.0.1:9", "timeout_s": 1}})
    state = tracking.init_tracking(cfg)
    assert state["reachable"] is False
    assert "unreachable" in caplog.text
    with tracking.open_run(cfg, "dl/fold0", {"stage": "dl"}) as run:
        run.log_metrics({"val_auc": 0.7}, step=3)
        run.log_params({"lr": 1e-4})
    record = json.loads((in_tmp / "results/mlflow/offline/dl_fold0.json").read_text())
    assert record["metrics"]["val_auc"][0] == {"value": 0.7, "step": 3}
    assert record["params"]["lr"] == "0.0001" and record["status"] == "FINISHED"


def test_failed_stage_marks_the_offline_record(in_tmp):
    cfg = load_config(overrides={"mlflow": {"enabled": False}})
    tracking.init_tracking(cfg)
    with pytest.raises(RuntimeError):
        with tracking.open_run(cfg, "x", {}):
            raise RuntimeError("boom")
    assert json.loads((in_tmp / "results/mlflow/offline/x.json").read_text())["status"] == "FAILED"


def test_the_experiment_and_the_parent_run_read_as_a_user_browses_them(in_tmp):
    """Issue 26: MLflow 3's UI opens the experiment as a model-training one; the parent run spans the workflow
    (RUNNING until the workflow's end hook) and carries the headline metrics; nested runs are named by stage."""
    from mlflow.tracking import MlflowClient

    cfg = load_config()
    state = tracking.init_tracking(cfg)
    client = MlflowClient(tracking.tracking_uri(cfg))
    exp = client.get_experiment(state["experiment_id"])
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = state["parent_run_id"]
    assert client.get_run(parent).info.status == "RUNNING"

    tracking.configure(cfg, "results/mlflow/tracking.json")  # what cinescar.jobs.setup_job does
    with tracking.start_run("evaluation", {"stage": "evaluation"}) as run:
        run.log_metrics({"x": 1.0})
    tracking.log_headline({"final.dl.test_auc": 0.81, "final.dl.external_auc": 0.77})
    tracking.workflow_status(cfg, "results/mlflow/tracking.json", "FINISHED")

    info = client.get_run(parent)
    assert info.info.status == "FINISHED" and info.info.end_time is not None
    assert info.data.metrics == {"final.dl.test_auc": 0.81, "final.dl.external_auc": 0.77}
    nested = client.search_runs([exp.experiment_id], filter_string="tags.`mlflow.parentRunId` = '%s'" % parent)
    assert [r.info.run_name for r in nested] == ["evaluation"]
    tracking.workflow_status(cfg, "results/mlflow/tracking.json", "RUNNING")  # a resumed workflow
    assert client.get_run(parent).info.status == "RUNNING"
