"""The model bundle as an MLflow `pyfunc` model, registered in the model registry.

`ScreeningModel` is a `mlflow.pyfunc.PythonModel` whose only artifact is the bundle folder: MLflow copies the
folder into the logged model, `load_context` loads it with `load_bundle` (hashes checked before anything is
unpickled) and `predict` screens one exam per input row. So `mlflow.pyfunc.load_model("models:/cinescar-
scar-screening/1").predict(df)` gives exactly what `cinescar screen` gives, for any consumer of the registry.

Input (signature): a DataFrame with columns `patient_id, ed_image, ed_mask, es_image, es_mask` (paths, as in
a cohort manifest; relative paths are relative to the working directory). Output: one row per exam with
`{model}_probability` and `{model}_decision` for radiomics, dl and fusion, the number of images and the
warnings (out of distribution, failed radiomics), `; `-joined.

Registration needs a database-backed tracking store (the default SQLite URI is one); when MLflow is
disabled, unreachable or file-based, `register_bundle` logs a warning and returns None -- never an error,
so the workflow's `bundle` rule cannot fail because of MLflow. cinescar must be importable where the model
is loaded. The model is logged "from code" (MLflow's recommended way): MLflow stores this file and runs it
at load time (it ends with `mlflow.models.set_model`), so the pyfunc layer itself holds no pickle; the
bundle's scikit-learn parts still are pickles, loaded only after their hashes check out.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd

from cinescar.cohort.contract import FILE_COLUMNS
from cinescar.screening.bundle import MODELS, bundle_settings
from cinescar.versions import package_versions

log = logging.getLogger(__name__)

ARTIFACT = "bundle"
CODE = str(Path(__file__).resolve())
"""This file: the model is logged from code (see the module docstring)."""
INPUT_COLUMNS = ["patient_id", *FILE_COLUMNS]
OUTPUT_COLUMNS = ["patient_id", "n_images", *[f"{m}_{what}" for m in MODELS for what in ("probability", "decision")],
                  "warnings"]  # fmt: skip


def signature():
    """Input: the exam's five manifest columns (strings); output: per model probability (double) and decision."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    outputs = [ColSpec("string", "patient_id"), ColSpec("long", "n_images")]
    for m in MODELS:
        outputs += [ColSpec("double", f"{m}_probability", required=False), ColSpec("string", f"{m}_decision")]
    outputs.append(ColSpec("string", "warnings"))
    return ModelSignature(inputs=Schema([ColSpec("string", c) for c in INPUT_COLUMNS]), outputs=Schema(outputs))


class ScreeningModel(mlflow.pyfunc.PythonModel):
    """Screens exams with the bundle shipped as the model's `bundle` artifact."""

    def load_context(self, context) -> None:
        from cinescar.screening.bundle import load_bundle

        self._bundle = load_bundle(context.artifacts[ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from cinescar.errors import CinescarError
        from cinescar.screening.screen import Exam, screen_exam

        frame = pd.DataFrame(model_input)
        missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
        if missing:
            raise CinescarError(f"screening input lacks column(s) {missing}; expected {INPUT_COLUMNS}")
        rows = []
        for rec in frame[INPUT_COLUMNS].itertuples(index=False):
            exam = Exam(patient_id=str(rec.patient_id), files={c: Path(str(getattr(rec, c))) for c in FILE_COLUMNS})
            result = screen_exam(self._bundle, exam)
            row: dict[str, Any] = {"patient_id": result["patient_id"], "n_images": len(result["images"])}
            for m in MODELS:
                row[f"{m}_probability"] = result["models"][m]["probability"]
                row[f"{m}_decision"] = result["models"][m]["decision"]
            row["warnings"] = "; ".join(result["warnings"])
            rows.append(row)
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def requirements() -> list[str]:
    """Pinned requirements recorded with the model (given explicitly: MLflow's inference would load the model)."""
    versions = package_versions()
    names = ("numpy", "scipy", "pandas", "scikit-learn", "torch", "SimpleITK", "pyradiomics-bhklab", "PyWavelets",
             "mlflow")  # fmt: skip
    return [f"{n}=={versions[n]}" for n in names if n in versions]


@contextmanager
def _quiet_logging_advice() -> Iterator[None]:
    """MLflow's advice to add type hints and an input example: the explicit signature covers both, and an
    input example would need an exam on disk at logging time."""
    with warnings.catch_warnings():
        for message in (".*type hints.*", ".*input example.*", ".*input_example.*"):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


def save_pyfunc(bundle_dir: str | Path, path: str | Path) -> Path:
    """Write the pyfunc model to a local folder (no tracking server needed); `mlflow.pyfunc.load_model(path)`."""
    with _quiet_logging_advice():
        mlflow.pyfunc.save_model(str(path), python_model=CODE, artifacts={ARTIFACT: str(bundle_dir)},
                                 signature=signature(), pip_requirements=requirements())
    return Path(path)


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API pointed at `uri` for a while; `mlflow.set_tracking_uri` also sets the environment
    variable MLFLOW_TRACKING_URI, which would otherwise outlive the call (and redirect later runs)."""
    old_env = os.environ.get("MLFLOW_TRACKING_URI")
    old_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_uri)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def _db_backed(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql", "mssql", "http", "https",
                                                      "databricks")


def register_bundle(bundle_dir: str | Path, cfg: dict, name: str | None = None) -> dict | None:
    """Log the bundle as a pyfunc model in a nested run (stage=bundle) and register it; None if not possible."""
    from cinescar import tracking
    from cinescar.screening.bundle import BUNDLE_JSON, sha256_file

    name = name or str(bundle_settings(cfg)["model_name"])
    if not cfg.get("mlflow", {}).get("enabled", True):
        log.warning("MLflow is disabled (mlflow.enabled: false): the bundle is not registered")
        return None
    uri = tracking.tracking_uri(cfg)
    if not _db_backed(uri):
        log.warning("MLflow tracking URI %s is not database-backed; the model registry needs one (e.g. the default "
                    "sqlite:///results/mlflow/mlflow.db): the bundle is not registered", uri)
        return None
    digest = sha256_file(Path(bundle_dir) / BUNDLE_JSON)
    try:
        with tracking.start_run(cfg, "bundle", {"stage": "bundle", "model": "screening"}) as run:
            if run.client is None or run.run_id is None:
                log.warning("MLflow tracking at %s is unavailable: the bundle is not registered", uri)
                return None
            run.log_params({"bundle.sha256": digest, "bundle.path": str(bundle_dir)})
            with using_tracking_uri(uri), mlflow.start_run(run_id=run.run_id), _quiet_logging_advice():
                info = mlflow.pyfunc.log_model(
                    name="screening-model", python_model=CODE, artifacts={ARTIFACT: str(bundle_dir)},
                    signature=signature(), pip_requirements=requirements(), registered_model_name=name,
                    metadata={"bundle_sha256": digest}, await_registration_for=60)
            version = getattr(info, "registered_model_version", None)
            run.set_tags({"bundle.sha256": digest, "registered_model": name, "registered_version": version})
    except Exception as exc:  # noqa: BLE001 - registration is a convenience; the bundle folder is the product
        log.warning("registering the bundle in MLflow (%s) failed: %s; the bundle folder is unaffected", uri, exc)
        return None
    log.info("bundle registered in MLflow as %s version %s (%s)", name, version, info.model_uri)
    return {"name": name, "version": version, "model_uri": info.model_uri, "tracking_uri": uri}


# Models from code: MLflow runs this file when it logs or loads the model and takes the model set here.
mlflow.models.set_model(ScreeningModel())
