"""The model bundle as an MLflow `pyfunc` model: saving it and registering it in the model registry.

The model itself is `cinescar.screening.pyfunc_model.ScreeningModel`, logged "from code" (MLflow's
recommended way): MLflow stores that small file and runs it when it loads the model, so loading runs only
the serving code, never this registration code. Its only artifact is the bundle folder: `load_context`
loads it with `load_bundle` (hashes checked before anything is deserialized) and `predict` screens one exam
per input row. So `mlflow.pyfunc.load_model("models:/cinescar-scar-screening@champion").predict(df)` gives
exactly what `cinescar screen` gives, for any consumer of the registry.

Input (signature, input example): a DataFrame with columns `patient_id, ed_image, ed_mask, es_image,
es_mask` (paths, as in a cohort manifest; relative paths are relative to the working directory). Output:
one row per exam with `{model}_probability` and `{model}_decision` for radiomics, dl and fusion, the number
of images and the warnings (out of distribution, failed radiomics), `; `-joined.

Registration needs a database-backed tracking store (the default SQLite URI is one); when MLflow is
disabled, unreachable or file-based, `register_bundle` logs a warning and returns None -- never an error,
so the workflow's `bundle` rule cannot fail because of MLflow. The new version gets the alias
`bundle.model_alias`. cinescar must be importable where the model is loaded.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from cinescar.screening.bundle import MODELS, bundle_settings
from cinescar.screening.pyfunc_model import ARTIFACT
from cinescar.screening.screen import EXAM_NAMES, INPUT_COLUMNS, OUTPUT_COLUMNS
from cinescar.versions import package_versions

log = logging.getLogger(__name__)

CODE = str(Path(__file__).with_name("pyfunc_model.py"))
"""The models-from-code file MLflow stores and runs at load time."""
__all__ = ["OUTPUT_COLUMNS", "input_example", "register_bundle", "save_pyfunc", "signature", "using_tracking_uri"]


def signature():
    """Input: the exam's five manifest columns (strings); output: per model probability (double) and decision."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    outputs = [ColSpec("string", "patient_id"), ColSpec("long", "n_images")]
    for m in MODELS:
        outputs += [ColSpec("double", f"{m}_probability", required=False), ColSpec("string", f"{m}_decision")]
    outputs.append(ColSpec("string", "warnings"))
    return ModelSignature(inputs=Schema([ColSpec("string", c) for c in INPUT_COLUMNS]), outputs=Schema(outputs))


def input_example() -> pd.DataFrame:
    """One exam in the documented exam-folder layout (`exam/ED.nii.gz`, ...): it shows a consumer the input's
    form. The paths are placeholders -- no patient's data or path goes into the registry -- so MLflow's
    check that the example can be served is expected to fail at logging time (its warning is silenced)."""
    row = {"patient_id": "exam", **{col: f"exam/{stem}.nii.gz" for col, stem in EXAM_NAMES.items()}}
    return pd.DataFrame([row], columns=INPUT_COLUMNS)


def requirements() -> list[str]:
    """Pinned requirements recorded with the model (given explicitly: MLflow's inference would load the model)."""
    versions = package_versions()
    # skops reads the bundle's scikit-learn models (format 3)
    names = ("numpy", "scipy", "pandas", "scikit-learn", "skops", "torch", "SimpleITK", "pyradiomics-bhklab",
             "PyWavelets", "mlflow")  # fmt: skip
    # a local version label (torch 2.13.0+cpu) names a wheel only PyTorch's own index serves: pin the release
    return [f"{n}=={versions[n].split('+', 1)[0]}" for n in names if n in versions]


def model_config(bundle_dir: str | Path) -> dict[str, str]:
    """Logged with the model: the bundle digest that `load_context` pins, and `exam_root`, the folder exam paths
    must lie in (empty: the serving process's working directory). MLflow lets a loader override only keys
    logged here: `mlflow.pyfunc.load_model(uri, model_config={"exam_root": "/data/exams"})`."""
    from cinescar.screening.bundle import BUNDLE_JSON, sha256_file

    return {"bundle_sha256": sha256_file(Path(bundle_dir) / BUNDLE_JSON), "exam_root": ""}


@contextmanager
def _quiet_logging_advice() -> Iterator[None]:
    """MLflow's advice to add type hints (the explicit signature covers them) and its warning that the
    placeholder input example cannot be served (its files are not on disk; see `input_example`)."""
    model_log = logging.getLogger("mlflow.models.model")
    level = model_log.level
    model_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for message in (".*type hints.*", ".*input example.*", ".*input_example.*"):
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            # MLflow's own example writer compares DataFrame columns with a range (a pandas deprecation)
            warnings.filterwarnings("ignore", message=".*Operation with range is deprecated.*")
            yield
    finally:
        model_log.setLevel(level)


def save_pyfunc(bundle_dir: str | Path, path: str | Path) -> Path:
    """Write the pyfunc model to a local folder (no tracking server needed); `mlflow.pyfunc.load_model(path)`."""
    with _quiet_logging_advice():
        mlflow.pyfunc.save_model(str(path), python_model=CODE, artifacts={ARTIFACT: str(bundle_dir)},
                                 signature=signature(), input_example=input_example(),
                                 pip_requirements=requirements(), model_config=model_config(bundle_dir))
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
    """Log the bundle as a pyfunc model in a nested run (stage=bundle), register it and point the alias
    `bundle.model_alias` at the new version; None if not possible.

    `cfg` holds the `bundle` and `mlflow` sections; the run nests under the workflow's parent run (tracking set
    up once by the job, `cinescar.jobs.setup_job`). Part of the `bundle` job's layer with `publish`, which calls it."""
    from cinescar import tracking
    from cinescar.screening.bundle import BUNDLE_JSON, sha256_file

    settings = bundle_settings(cfg)
    name = name or str(settings["model_name"])
    alias = str(settings["model_alias"])
    if not cfg.get("mlflow", {}).get("enabled", True):
        log.warning("MLflow is disabled (mlflow.enabled: false): the bundle is not registered")
        return None
    uri = tracking.tracking_uri(cfg)
    if not _db_backed(uri):
        log.warning("MLflow tracking URI %s is not database-backed; the model registry needs one (e.g. the default "
                    "sqlite:///results/mlflow/mlflow.db): the bundle is not registered", tracking.public(uri))
        return None
    digest = sha256_file(Path(bundle_dir) / BUNDLE_JSON)
    try:
        with tracking.start_run("bundle-register", {"stage": "bundle", "model": "screening"}) as run:
            if run.client is None or run.run_id is None:
                log.warning("MLflow tracking at %s is unavailable: the bundle is not registered", tracking.public(uri))
                return None
            run.log_params({"bundle.sha256": digest, "bundle.path": str(bundle_dir)})
            with using_tracking_uri(uri), mlflow.start_run(run_id=run.run_id), _quiet_logging_advice():
                info = mlflow.pyfunc.log_model(
                    name="screening-model", python_model=CODE, artifacts={ARTIFACT: str(bundle_dir)},
                    signature=signature(), input_example=input_example(), pip_requirements=requirements(),
                    registered_model_name=name, metadata={"bundle_sha256": digest}, await_registration_for=60,
                    model_config=model_config(bundle_dir))
            version = getattr(info, "registered_model_version", None)
            if version is not None:
                mlflow.MlflowClient(tracking_uri=uri).set_registered_model_alias(name, alias, str(version))
            run.set_tags({"bundle.sha256": digest, "registered_model": name, "registered_version": version,
                          "registered_alias": alias})
    except Exception as exc:  # noqa: BLE001 - registration is a convenience; the bundle folder is the product
        log.warning("registering the bundle in MLflow (%s) failed: %s; the bundle folder is unaffected",
                    tracking.public(uri), tracking.public(str(exc)))
        return None
    log.info("bundle registered in MLflow as %s version %s, alias %s (models:/%s@%s)", name, version, alias, name,
             alias)
    return {"name": name, "version": version, "alias": alias, "model_uri": info.model_uri,
            "tracking_uri": tracking.public(uri)}
