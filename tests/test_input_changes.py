"""Editing an image or a mask reruns what read it, and only that.

Before, only manifest.csv was an input of validation and preprocessing: a corrected contour or a replaced image
left every result as it was. Now every file a manifest row names is an input of validation, and each centre's
preprocessing takes its own centre's files, so an edit reruns validation, that centre's preprocessing and what
depends on them -- not the other centres, not the split (labels only).
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from conftest import REPO, make_cohort, write_volume

pytestmark = pytest.mark.slow
TARGETS = ["results/preprocess/index.parquet", "results/splits/splits.json"]


def snakemake(workdir, *args: str, configfiles: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
           *args, "--configfile", str(REPO / ".test" / "config.yaml"), *configfiles]
    return subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=600)


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> number of jobs, from the 'Job stats' table of a dry run."""
    block = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    found = (re.match(r"^(\w+)\s+(\d+)$", line.strip()) for line in block.splitlines())
    return {m.group(1): int(m.group(2)) for m in found if m and m.group(1) != "total"}


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    cohort = make_cohort(root / "cohort", n_internal=14, n_external=4, size=40, n_slices=8)
    cfg = root / "cohort.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": {"path": str(cohort), "synthetic": False, "name": "inputs"},
                                   "mlflow": {"enabled": False}}))
    work = root / "run"
    done = snakemake(work, *TARGETS, configfiles=[str(cfg)])
    assert done.returncode == 0, done.stderr[-3000:]
    return work, cohort, cfg


def _plan(work, cfg):
    out = snakemake(work, "-n", *TARGETS, configfiles=[str(cfg)])
    assert out.returncode == 0, out.stderr[-3000:]
    return planned_jobs(out.stdout + out.stderr), out.stdout + out.stderr


def test_unchanged_inputs_rerun_nothing(preprocessed):
    work, _, cfg = preprocessed
    plan, text = _plan(work, cfg)
    assert plan == {}, text[-2000:]


def test_an_edited_image_reruns_only_its_dependants(preprocessed):
    work, cohort, cfg = preprocessed
    outputs = {p: p.stat().st_mtime_ns for p in [*(work / "results/preprocess/centers").rglob("*.parquet"),
                                                 work / "results/splits/splits.json"]}
    path = cohort / "images" / "T001_ED.nii.gz"  # T001 is in "Centre A"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    write_volume((arr + 7).astype(np.int16), path)
    plan, _ = _plan(work, cfg)
    # validation is a checkpoint: a dry run lists it; what follows it is decided once it has run
    assert plan.get("validate_cohort") == 1, plan
    done = snakemake(work, *TARGETS, configfiles=[str(cfg)])
    assert done.returncode == 0, done.stderr[-3000:]
    rerun = sorted(str(p.relative_to(work)) for p, mtime in outputs.items() if p.stat().st_mtime_ns != mtime)
    assert rerun == ["results/preprocess/centers/centre-a/index.parquet"], rerun
    assert _plan(work, cfg)[0] == {}
