"""A tracking server that goes away mid-run costs seconds, not minutes, and loses no record.

A real local `mlflow server` is started, a logging job begins online, the server is killed, and the job and
the next one must finish, bounded by `mlflow.timeout_s`, with their records kept as JSON under
results/mlflow/offline/. Before the fix the reachability flag from set-up was reused and MLflow's own retries
(7, with exponential back-off) made each job wait minutes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cinescar import tracking
from cinescar.config import load_config

MLFLOW = Path(sys.executable).with_name("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, limit: float = 300.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("mlflow server did not come up")


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the server and its uvicorn workers: a hard outage
    proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_server_killed_mid_run_costs_at_most_the_timeout(server, tmp_path, monkeypatch):
    url, proc = server
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    # first API call is slow on a loaded machine (the server initialises lazily): warm it up outside the timing
    urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=120).close()
    cfg = load_config(overrides={"mlflow": {"tracking_uri": url, "timeout_s": 5}})
    assert tracking.init_tracking(cfg)["reachable"] is True

    with tracking.open_run(cfg, "radiomics/fold0", {"stage": "radiomics"}) as run:
        assert run.client is not None  # online
        run.log_params({"k": 10})
        run.log_metrics({"val_auc": 0.61})
        _kill(proc)
        t0 = time.monotonic()
        run.log_metrics({"test_auc": 0.55})  # the server is gone: fails fast, falls back to the offline record
        run.set_tags({"fold": 0})
    first = time.monotonic() - t0

    t0 = time.monotonic()
    with tracking.open_run(cfg, "dl/fold0", {"stage": "dl"}) as run:  # a later job: re-probes, goes offline
        assert run.client is None
        run.log_metrics({"val_auc": 0.7})
    second = time.monotonic() - t0

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "5"
    # bounded by the timeout (5 s) per request, with slack for a loaded machine; the unbounded client took
    # ~250 s per job
    assert first < 20 and second < 20, (first, second)
    offline = tmp_path / "results/mlflow/offline"
    rec = json.loads((offline / "radiomics_fold0.json").read_text())
    assert rec["status"] == "FINISHED"
    assert rec["metrics"]["val_auc"][0]["value"] == 0.61 and rec["metrics"]["test_auc"][0]["value"] == 0.55
    assert rec["params"]["k"] == "10" and rec["tags"]["fold"] == "0"
    rec = json.loads((offline / "dl_fold0.json").read_text())
    assert rec["metrics"]["val_auc"][0]["value"] == 0.7 and rec["status"] == "FINISHED"


def test_no_credentials_or_absolute_paths_reach_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.public("https://alice:s3cret@mlflow.example.org:5000") == "https://mlflow.example.org:5000"
    assert tracking.public(str(tmp_path / "results" / "bundle")) == "results/bundle"
    assert tracking.public("/home/alice/cohorts/hcm") == "<outside the run directory>/hcm"
    assert tracking.public(f"sqlite:///{tmp_path}/results/mlflow/mlflow.db") == "sqlite:///results/mlflow/mlflow.db"
    assert tracking.public({"a": ["/etc/x", "plain"], "n": 3}) == {"a": ["<outside the run directory>/x", "plain"],
                                                                    "n": 3}
    cfg = load_config(overrides={"mlflow": {"enabled": False}, "cohort": {"path": "/home/alice/cohorts/hcm"}})
    tracking.init_tracking(cfg)
    with tracking.open_run(cfg, "x", {"source": "/home/alice/cohorts/hcm"}) as run:
        run.log_params({"uri": "http://bob:tok@host:5000", "cohort": cfg["cohort"]["path"]})
        run.log_dict({"cohort": cfg["cohort"]}, "cohort.json")
    text = (tmp_path / "results/mlflow/offline/x.json").read_text()
    assert "alice" not in text and "bob" not in text and "tok@" not in text, text
