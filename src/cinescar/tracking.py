"""MLflow tracking that never stops a run.

One experiment per cohort (`cinescar-<cohort.name>`, tagged as a model-training experiment so that MLflow 3's UI
opens it on its runs, not on GenAI traces), one parent run per config (tagged with the config's hash, so every
job of one workflow run nests under the same parent, and a changed config gets a new one), nested runs per
stage and fold (`<stage>-fold<k>`, `<stage>-<step>`). The parent run spans the workflow: `mlflow_init` opens it,
the Snakefile's onstart/onsuccess/onerror hooks set its status (`workflow_status`), and the evaluation job logs
the study's headline numbers onto it (`log_headline`).

Set up once per job, beside logging (`configure`, called by `cinescar.jobs.setup_job` from the rule's log file,
its tracking-state input and the workflow's config): the job layer (`*/run.py`, `screening/publish.py`) then
opens its runs by name (`start_run(name, tags)`); no module below it imports this one. The SQLite store is created once by the `mlflow_init` rule, upstream of
every logging rule, because two processes creating a fresh SQLite store at once crash one of them.

If the tracking server cannot be reached, every call degrades to writing the same records as JSON under
`results/mlflow/offline/`, and the run says so in its log: nothing is lost and nothing fails. Every logging
job probes the server again (a server that went away after set-up is noticed by the next job, not assumed
alive), and MLflow's own HTTP retries and timeouts are bounded by `mlflow.timeout_s`: without that, urllib3's
default retries cost minutes per job during an outage.

What goes to MLflow is public by construction (`public`): credentials are stripped from URIs
(`https://user:token@host` -> `https://host`) and absolute paths become paths relative to the run directory
(or only their last component, when outside it), in params, tags and logged dicts alike.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cinescar.config import config_hash, schema_section
from cinescar.public import _CREDENTIALS, public  # noqa: F401 (public: re-exported)

log = logging.getLogger(__name__)
ROOT = Path("results/mlflow")
READY = ROOT / "tracking.json"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
"""MLflow 3's experiment-type tag (its UI reads it to choose the runs view over the GenAI traces view)."""

_JOB: dict[str, Any] = {"cfg": None, "state": READY}
"""This process's tracking set-up (`configure`): the workflow's config (names the parent run) and its state file."""


def configure(cfg: dict | None, state_path: str | Path | None = None) -> None:
    """Set up tracking for this job once: `cfg` is the workflow's whole config (the parent run is its hash's),
    `state_path` the rule's tracking-state input (tracking.json, written by `mlflow_init`).

    Before it is called (a library function used from a notebook or a test) runs are recorded offline as JSON."""
    _JOB["cfg"] = cfg
    _JOB["state"] = Path(state_path) if state_path else READY


def tracking_uri(cfg: dict) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.get("mlflow", {}).get("tracking_uri",
                                                                               "sqlite:///results/mlflow/mlflow.db")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # relative SQLite paths are relative to the working directory; make them absolute for artifacts' sake
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def timeout_s(cfg: dict) -> float:
    return float(cfg.get("mlflow", {}).get("timeout_s", 5))


def bound_http(cfg: dict) -> None:
    """Bound MLflow's HTTP client by `mlflow.timeout_s`: no retries, each request timing out after it.

    MLflow reads these variables at every request; its defaults (7 retries with exponential back-off, 120 s per
    request) made one logging job wait ~4 minutes when the server went away. A smaller value set by the user
    is kept.
    """
    limit = max(1, math.ceil(timeout_s(cfg)))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    current = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "")
    if not current.isdigit() or int(current) > limit:
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(limit)


def experiment_name(cfg: dict) -> str:
    name = cfg.get("mlflow", {}).get("experiment") or ""
    return name or f"cinescar-{schema_section(cfg, 'cohort')['name']}"


def _reachable(uri: str, timeout: float) -> bool:
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        probe = _CREDENTIALS.sub(lambda m: m.group("scheme"), uri)  # /health needs no credentials
        with urllib.request.urlopen(probe.rstrip("/") + "/health", timeout=timeout) as resp:  # noqa: S310
            return resp.status < 500
    except Exception:  # any network failure means "not reachable"
        return False


def _client(cfg: dict):
    from mlflow.tracking import MlflowClient

    bound_http(cfg)
    return MlflowClient(tracking_uri=tracking_uri(cfg))


def _experiment_id(client, cfg: dict) -> str:
    name = experiment_name(cfg)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if tracking_uri(cfg).startswith("sqlite:"):
        artifacts = (ROOT / "artifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=artifacts, tags=EXPERIMENT_KIND)


def init_tracking(cfg: dict, out: str | Path = READY) -> dict:
    """Create the store and experiment once; record where tracking goes (or why it does not)."""
    uri = tracking_uri(cfg)
    state: dict[str, Any] = {"tracking_uri": public(uri), "experiment": experiment_name(cfg), "enabled": True,
                             "reachable": False, "experiment_id": None}
    if not cfg.get("mlflow", {}).get("enabled", True):
        state["enabled"] = False
    elif not _reachable(uri, timeout_s(cfg)):
        log.warning("MLflow tracking server %s is unreachable: runs are recorded as JSON under %s/offline",
                    public(uri), ROOT)
    else:
        try:
            if uri.startswith("sqlite:///"):
                Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            client = _client(cfg)
            state["experiment_id"] = _experiment_id(client, cfg)
            for key, value in EXPERIMENT_KIND.items():  # also on an experiment made by an older cinescar
                client.set_experiment_tag(state["experiment_id"], key, value)
            # the workflow's parent run, made once here: every job nests under the id it reads from this file
            state["parent_run_id"] = _parent_run(client, state["experiment_id"], cfg)
            state["parent_config_hash"] = config_hash(cfg)
            state["reachable"] = True
        except Exception as exc:  # the store itself is broken or refuses us: carry on with local files
            log.warning("MLflow tracking at %s failed (%s): runs are recorded as JSON under %s/offline",
                        public(uri), public(str(exc)), ROOT)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(state, indent=2))
    return state


class RunLogger:
    """The handful of calls stages need; each works online (MLflow) or offline (JSON)."""

    def __init__(self, client, run_id: str | None, offline_path: Path):
        self.client, self.run_id, self.offline_path = client, run_id, offline_path
        self.record: dict[str, Any] = {"params": {}, "metrics": {}, "tags": {}, "artifacts": []}

    def _safe(self, what: str, fn, *args) -> None:
        if self.client is None or self.run_id is None:
            return
        try:
            fn(*args)
        except Exception as exc:
            log.warning("MLflow %s failed (%s); this run's records are kept in %s", what,
                        public(" ".join(str(exc).split())[:300]), self.offline_path)
            self.client = None

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        flat = {str(k): str(public(v))[:6000] for k, v in params.items()}
        self.record["params"].update(flat)
        self._safe("log_params", lambda: self.client.log_batch(
            self.run_id, params=[Param(k, v) for k, v in flat.items()]))

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        clean = {str(k): float(v) for k, v in metrics.items() if v is not None}
        for k, v in clean.items():
            self.record["metrics"].setdefault(k, []).append({"value": v, "step": step or 0})
        self._safe("log_metrics", lambda: self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, step or 0) for k, v in clean.items()]))

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        flat = {str(k): str(public(v)) for k, v in tags.items()}
        self.record["tags"].update(flat)
        self._safe("set_tags", lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in flat.items()]))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.record["artifacts"].append(str(path))
        self._safe("log_artifact", lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def log_dict(self, obj: Any, name: str) -> None:
        obj = public(obj)
        self.record.setdefault("dicts", {})[name] = obj
        self._safe("log_dict", lambda: self.client.log_dict(self.run_id, obj, name))

    def log_text(self, text: str, name: str) -> None:
        self.record.setdefault("texts", {})[name] = text
        self._safe("log_text", lambda: self.client.log_text(self.run_id, text, name))


def _parent_run(client, experiment_id: str, cfg: dict) -> str:
    """Find or create the parent run of this config; a file lock keeps parallel callers from making two.

    The workflow's `mlflow_init` rule calls it once and writes the id into tracking.json; jobs read it
    there (`start_run`). The search by config hash remains for callers without that file (tests, scripts).
    """
    from filelock import FileLock

    key = config_hash(cfg)
    ROOT.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ROOT / ".parent.lock"), timeout=120):
        runs = client.search_runs([experiment_id], filter_string=f"tags.`cinescar.config_hash` = '{key}' and tags.`cinescar.role` = 'workflow'",
                                  max_results=1)
        if runs:
            return runs[0].info.run_id
        run = client.create_run(experiment_id, run_name=f"workflow-{key}",
                                tags={"cinescar.config_hash": key, "cinescar.role": "workflow"})
        from mlflow.entities import Param

        flat = _flatten(public(cfg))
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in list(flat.items())[:100]])
        client.log_dict(run.info.run_id, public(cfg), "config.json")
        # left RUNNING: it spans the workflow, whose end hooks set its status (`workflow_status`)
        return run.info.run_id


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def job_config() -> dict | None:
    """The workflow's config this job was set up with (`configure`): the bundle records it as provenance."""
    return _JOB["cfg"]


def _recorded_parent(state: dict | None) -> str | None:
    """The parent run `mlflow_init` recorded, if it is this job's config's (after a config change mlflow_init is
    not rerun: the jobs of the new config find or make their own parent by config hash)."""
    cfg = _JOB["cfg"]
    if not state or not state.get("reachable") or cfg is None:
        return None
    return state.get("parent_run_id") if state.get("parent_config_hash") == config_hash(cfg) else None


def log_headline(metrics: dict[str, float]) -> None:
    """The study's headline numbers onto the workflow's parent run (what a user browsing the experiment sees
    first); silently nothing when tracking is off, offline, or the parent is not this config's."""
    state_path = Path(_JOB["state"])
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    parent = _recorded_parent(state)
    if parent is None or not metrics:
        return
    logger = RunLogger(_client(_JOB["cfg"]), parent, ROOT / "offline" / "workflow.json")
    logger.log_metrics(metrics)


def workflow_status(cfg: dict, state_path: str | Path, status: str) -> None:
    """Set the workflow's parent run to `status` (RUNNING at start, FINISHED or FAILED at the end): called by
    the Snakefile's onstart/onsuccess/onerror hooks with the workflow's config, so the parent's status and
    duration are the workflow's. Never fails a workflow: tracking off, unreachable or not set up yet is a no-op."""
    path = Path(state_path)
    state = json.loads(path.read_text()) if path.exists() else None
    if not state or not state.get("reachable") or state.get("parent_config_hash") != config_hash(cfg):
        return
    try:
        client = _client(cfg)
        if status == "RUNNING":
            client.update_run(state["parent_run_id"], status="RUNNING")
        else:
            client.set_terminated(state["parent_run_id"], status)
    except Exception as exc:  # noqa: BLE001 - a tracking problem never fails the workflow
        log.warning("MLflow: could not set the workflow run's status to %s (%s)", status,
                    public(" ".join(str(exc).split())[:300]))


@contextmanager
def start_run(run_name: str, tags: dict | None = None) -> Iterator[RunLogger]:
    """A nested run of this job (set up by `configure`) under the workflow's parent run; JSON fallback under
    results/mlflow/offline/. Name it `<stage>-fold<k>` or `<stage>-<step>`: the name is what the UI lists."""
    with open_run(_JOB["cfg"], run_name, tags, _JOB["state"]) as run:
        yield run


@contextmanager
def open_run(cfg: dict | None, run_name: str, tags: dict | None = None, state_path: str | Path = READY
             ) -> Iterator[RunLogger]:  # fmt: skip
    """`start_run` for an explicit config and state file (tests, `start_run` itself).

    The parent is the one `mlflow_init` recorded in `state_path` (the rule's tracking.json) when it is
    there, so a job does not search runs by config hash under a lock. Without a config (tracking not set up in
    this process) the run is recorded offline only.
    """
    tags = {str(k): str(public(v)) for k, v in (tags or {}).items()}
    offline = ROOT / "offline" / f"{run_name.replace('/', '_')}.json"
    client = run_id = None
    if cfg is None:
        cfg = {"mlflow": {"enabled": False}}
    state = json.loads(Path(state_path).read_text()) if Path(state_path).exists() else None
    uri = tracking_uri(cfg)
    remote = uri.startswith(("http://", "https://"))
    # a local store that failed at set-up stays off; a server is probed again by every job
    usable = state is None or bool(state.get("reachable")) or remote
    if cfg.get("mlflow", {}).get("enabled", True) and usable and not _reachable(uri, timeout_s(cfg)):
        log.warning("MLflow tracking server %s is unreachable now: recording run %s in %s", public(uri), run_name,
                    offline)
        usable = False
    if cfg.get("mlflow", {}).get("enabled", True) and usable:
        try:
            client = _client(cfg)
            exp_id = _experiment_id(client, cfg)
            # the recorded parent is this config's: after a config change (mlflow_init is not rerun for one) the
            # jobs of the new config find or make their own parent by config hash, as before
            same = (state or {}).get("experiment_id") == exp_id and (state or {}).get("parent_config_hash") == config_hash(cfg)
            recorded = (state or {}).get("parent_run_id") if same else None
            parent = recorded or _parent_run(client, exp_id, cfg)
            run = client.create_run(exp_id, run_name=run_name, tags={
                **tags, "mlflow.parentRunId": parent, "cinescar.config_hash": config_hash(cfg)})
            run_id = run.info.run_id
        except Exception as exc:
            log.warning("MLflow unavailable (%s): recording run %s in %s", public(" ".join(str(exc).split())[:300]),
                        run_name, offline)
            client = run_id = None
    logger = RunLogger(client, run_id, offline)
    logger.record["tags"].update(tags)
    status = "FINISHED"
    try:
        yield logger
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if logger.client is not None and run_id is not None:
            logger._safe("terminate", lambda: logger.client.set_terminated(run_id, status))
        else:
            offline.parent.mkdir(parents=True, exist_ok=True)
            offline.write_text(json.dumps({"run_name": run_name, "status": status, **logger.record}, indent=1,
                                          default=str))
