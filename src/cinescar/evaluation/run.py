"""Files in, files out, MLflow on the side: the evaluation stage as the workflow runs it (issue 26).

Each function is one job: it takes the rule's declared inputs, outputs and params (`workflow/rules/evaluation.smk`)
and nothing else; tracking was set up by the script (`cinescar.jobs.setup_job`). This is the one evaluation module
that opens MLflow runs: `study` and `evidence` hand what they would log to `log_run`, and the evaluation job puts
the study's headline numbers (the final models' AUC on test and external, the primary comparison) onto the
workflow's parent run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cinescar import tracking
from cinescar.errors import CinescarError
from cinescar.models import MODELS

log = logging.getLogger(__name__)
TAGS = {"stage": "evaluation"}


def log_run(name: str, record: dict) -> None:
    """One nested MLflow run (`evaluation`, `evaluation-evidence`, `evaluation-report`) from a record of the
    library's; its `headline` metrics also go onto the workflow's parent run."""
    with tracking.start_run(name, TAGS) as run:
        if record.get("params"):
            run.log_params(record["params"])
        items = list((record.get("metrics") or {}).items())
        for start in range(0, len(items), 500):  # MLflow accepts at most 1000 metrics per batch
            run.log_metrics(dict(items[start:start + 500]))
        for dict_name, obj in (record.get("dicts") or {}).items():
            run.log_dict(obj, dict_name)
        for path in record.get("artifacts") or []:
            run.log_artifact(path)
    if record.get("headline"):
        tracking.log_headline(record["headline"])


def evaluation_outputs(outputs: dict) -> dict[str, Path]:
    """The rule's outputs by name: its named outputs, and each file of its `evidence` list under its stem
    (`metrics_ci`, ..., `evidence`). A file the evaluation writes that the rule does not declare is an error
    (`KeyError` naming it), so the rule stays the one list of the stage's files."""
    named = {k: Path(v) for k, v in outputs.items() if k != "evidence"}
    evidence = {Path(p).name.split(".")[0]: Path(p) for p in outputs.get("evidence", [])}
    clash = sorted(set(named) & set(evidence))
    if clash:
        raise CinescarError(f"evaluate rule: outputs {clash} are declared twice")
    return {**named, **evidence}


def evaluate_job(inputs: dict, outputs: dict, params: dict) -> dict[str, Path]:
    """`evaluate`: every model's predictions -> metrics, tables, evidence and summary (beside `outputs["metrics"]`)."""
    from cinescar.evaluation.study import evaluate_study

    files = evaluate_study(
        {m: inputs[m] for m in MODELS if m in inputs}, inputs["index"], inputs["splits"], inputs["manifest"],
        evaluation_outputs(outputs), params["cfg"],
        selected_features={"radiomics": (inputs["radiomics_selected"], inputs["radiomics_choice"]),
                           "fusion": (inputs["fusion_selected"], inputs["fusion_choice"])},
        fusion_classifiers=inputs["fusion_classifiers"], fusion_choice=inputs["fusion_choice"],
        statuses={Path(p).parent.name: p for p in inputs.get("statuses", [])}, log_run=log_run)
    return files


def report_job(inputs: dict, outputs: dict, params: dict) -> Path:
    """`report`: the self-contained study report (`outputs["html"]`, with `versions.json` beside it), logged to
    MLflow. Its provenance section shows the workflow's whole config (the one tracking was set up with)."""
    from cinescar.evaluation.report import build_report
    from cinescar.evaluation.report_inputs import ReportInputs

    cfg = tracking.job_config() or params["cfg"]
    out = build_report(ReportInputs.from_rule(inputs), outputs["html"], cfg,
                       cohort_figure=params.get("cohort_figure") or None, versions_out=outputs.get("versions"))
    log_run("evaluation-report", {"artifacts": [out]})
    return out
