"""What every workflow script does first: logging and tracking, set up once from the job's own rule.

A script is `setup_job(snakemake)` and one call into its stage's job layer (`*/run.py`, `screening/publish.py`)
with the rule's declared inputs, outputs and params. The rule gives the log file (`log:`), the tracking state
(the `mlflow` input, tracking.json) and the workflow's config, which only names the MLflow parent run: no
computation reads it (issue 26), so Snakemake's params trigger reruns exactly the jobs whose params changed.
"""

from __future__ import annotations

from typing import Any

from cinescar import tracking
from cinescar.logs import setup_logging


def setup_job(smk: Any) -> None:
    """Logging to the rule's log file, tracking from its `mlflow` input (when it declares one)."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    tracking.configure(smk.config, smk.input.get("mlflow"))


def init_tracking_job(smk: Any) -> dict:
    """The `mlflow_init` job: logging, then the experiment and the workflow's parent run, recorded in its output
    (tracking.json) for every later job to read."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    return tracking.init_tracking(smk.config, smk.output[0])


def inputs(smk: Any) -> dict[str, Any]:
    """The rule's named inputs as a dict; a named list of files (`expand(...)`) stays a list."""
    return {k: (list(v) if not isinstance(v, str) else v) for k, v in smk.input.items()}


def outputs(smk: Any) -> dict[str, Any]:
    """The rule's named outputs as a dict (the job layer writes each under its name: the names are the rule's)."""
    return {k: (list(v) if not isinstance(v, str) else v) for k, v in smk.output.items()}


def params(smk: Any) -> dict[str, Any]:
    """The rule's named params as a dict (`cfg`: the config sections the job reads, `cfg_sections` in
    workflow/rules/common.smk)."""
    return dict(smk.params.items())
