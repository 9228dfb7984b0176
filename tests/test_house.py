"""The house (issue 17): no import circle in src/, each raw file of an exam read once, facts measured once."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from conftest import REPO, make_cohort

SRC = REPO / "src"


def _import_graph() -> dict[str, set[str]]:
    """cinescar module -> the cinescar modules it imports anywhere (module level or inside a function)."""
    paths = {}
    for p in (SRC / "cinescar").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph = {m: set() for m in paths}
    for mod, p in paths.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[mod] |= {n for n in names if n in paths and n != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_src():
    graph = _import_graph()
    assert "cinescar.screening.bundle" in graph and graph["cinescar.screening.publish"]  # the walk found them
    cycles = _cycles(graph)
    assert cycles == [], (f"import circle(s) {cycles}: move what both sides need into a small module that both "
                          "import (docs/architecture.md, 'one home per contract')")


def test_the_loaded_mlflow_model_does_not_import_the_registration_code():
    """MLflow runs pyfunc_model.py when it loads the model: it must not pull in the registration module."""
    graph = _import_graph()
    assert "cinescar.screening.pyfunc" not in graph["cinescar.screening.pyfunc_model"]
    assert "cinescar.screening.pyfunc" not in graph["cinescar.screening.bundle"]


def test_screening_checks_and_preprocesses_an_exam_reading_each_file_once(tmp_path, monkeypatch):
    from cinescar.cohort.contract import FILE_COLUMNS
    from cinescar.preprocessing.images import PreprocessSettings
    from cinescar.preprocessing.store import preprocess_exam
    from cinescar.screening.screen import check, exam_from_manifest, exam_statistics

    cohort = make_cohort(tmp_path / "cohort", n_internal=2, n_external=0, n_slices=4)
    exam = exam_from_manifest(cohort / "manifest.csv", "T001")
    reads: list[str] = []
    real = sitk.ReadImage
    monkeypatch.setattr(sitk, "ReadImage", lambda path, *a, **k: reads.append(str(path)) or real(path, *a, **k))
    volumes: dict = {}
    check(exam, volumes)
    _, _, rows = preprocess_exam(exam.patient_id, exam.files, PreprocessSettings(), volumes=volumes)
    stats = exam_statistics(rows)
    assert sorted(reads) == sorted(str(exam.files[c]) for c in FILE_COLUMNS)
    # the fingerprint equals what re-reading the raw image gives
    image = real(str(exam.files["ed_image"]))
    raw = sitk.GetArrayFromImage(image).astype(np.float64)
    assert stats["ED"]["intensity_p01"] == float(np.percentile(raw, 1.0))
    assert stats["ED"]["intensity_p99"] == float(np.percentile(raw, 99.0))
    assert stats["ED"]["rows"] == raw.shape[1] and stats["ED x"]["spacing_mm"] == image.GetSpacing()[0]


def test_the_preprocessing_index_carries_the_fingerprint(tmp_path):
    from cinescar.config import load_config
    from cinescar.preprocessing.fingerprint import FINGERPRINT_COLUMNS
    from cinescar.preprocessing.store import preprocess_center

    cohort = make_cohort(tmp_path / "cohort", n_internal=3, n_external=0, n_slices=4)
    index = preprocess_center(cohort, "centre-a", tmp_path / "pre", load_config())
    assert set(FINGERPRINT_COLUMNS) <= set(index.columns)
    per_stack = index.groupby(["patient_id", "phase"])[FINGERPRINT_COLUMNS].nunique()
    assert (per_stack == 1).all().all()  # one value per phase stack, repeated on its images
    assert pd.read_parquet(tmp_path / "pre" / "index.parquet")[FINGERPRINT_COLUMNS].notna().all().all()


def test_schema_defaults_are_the_schemas():
    """Code that meets an unvalidated config (bundle settings) takes its defaults from the schema."""
    import yaml

    from cinescar.config import SCHEMA, schema_defaults
    from cinescar.screening.bundle import bundle_settings

    schema = yaml.safe_load(Path(SCHEMA).read_text(encoding="utf-8"))
    props = schema["properties"]["bundle"]["properties"]
    assert bundle_settings({}) == {k: v["default"] for k, v in props.items()}
    assert bundle_settings({"bundle": {"ood_tolerance": 0.5}})["ood_tolerance"] == 0.5
    assert schema_defaults("dl", "gradcam")["layer"] == schema["properties"]["dl"]["properties"]["gradcam"][
        "properties"]["layer"]["default"]


def test_jobs_nest_under_the_parent_run_that_mlflow_init_recorded(tmp_path, monkeypatch):
    """mlflow_init writes the parent run's id into tracking.json; a job reads it instead of searching."""
    import pytest

    from cinescar import tracking

    monkeypatch.chdir(tmp_path)
    cfg = {"seed": 0, "cohort": {"name": "tiny"},
           "mlflow": {"enabled": True, "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    state = tracking.init_tracking(cfg, tmp_path / "tracking.json")
    assert state["reachable"] and state["parent_run_id"]
    monkeypatch.setattr(tracking, "_parent_run", lambda *a, **k: pytest.fail("searched for the parent run"))
    tracking.configure(cfg, tmp_path / "tracking.json")  # what a job's script does (cinescar.jobs.setup_job)
    with tracking.start_run("job") as run:
        parent = run.client.get_run(run.run_id).data.tags["mlflow.parentRunId"]
    assert parent == state["parent_run_id"]
