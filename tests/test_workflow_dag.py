"""The workflow parses, both profiles build the DAG, and the conda environments match the pinned versions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _dry_run(tmp_path: Path, *extra: str) -> str:
    proc = subprocess.run([*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", *extra],
                          capture_output=True, encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("profile", ["workstation", "slurm"])
def test_profiles_build_the_dag(tmp_path, profile):
    out = _dry_run(tmp_path, "--profile", str(REPO / "profiles" / profile))
    assert "synth_cohort" in out and "validate_cohort" in out


def test_bad_config_stops_with_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("splits:\n  folds: 1\n")
    proc = subprocess.run([*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "1",
                           "--configfile", str(bad)], capture_output=True, encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode != 0
    assert "splits.folds" in proc.stdout + proc.stderr


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*\"?([A-Za-z0-9_.-]+)==([0-9][^\";\s]*)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_conda_envs_agree_with_pyproject():
    project = _pins((REPO / "pyproject.toml").read_text().splitlines())
    assert "pyradiomics-bhklab" in project and "mlflow" in project
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
        for name, version in _pins(pip).items():
            if name == "torch":
                continue  # installed by the Makefile with an explicit CPU/CUDA choice
            assert project.get(name) == version, f"{env.name}: {name}=={version} vs pyproject {project.get(name)}"


def test_every_rule_has_a_log_and_an_environment():
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    rules = re.findall(r"^\s*(?:rule|checkpoint) (\w+):", text, flags=re.M)
    blocks = re.split(r"^\s*(?:rule|checkpoint) \w+:", text, flags=re.M)[1:]
    for name, block in zip(rules, blocks):
        if name == "all":
            continue
        assert "log:" in block, f"rule {name} has no log:"
        assert "conda:" in block, f"rule {name} has no conda environment"


def test_numeric_threads_come_from_the_config():
    """`--cores 1` scales a rule's `threads:` down; torch/OpenMP thread counts change summation order, so the
    DL and fusion jobs must take their thread count from the config (measured: 0.25 probability drift)."""
    for script in ("dl_train", "dl_tune", "fusion_fold"):
        text = (REPO / "workflow" / "scripts" / f"{script}.py").read_text(encoding="utf-8")
        assert "snakemake.threads" not in text
        # from the rule's params (its config sections), never the granted cores
        assert ("cfg = snakemake.params.cfg" in text and '"]["threads"]' in text) or "params(snakemake)" in text, script
    # the DL job layer sets torch's threads from the params' dl.threads
    dl_run = (REPO / "src" / "cinescar" / "dl" / "run.py").read_text(encoding="utf-8")
    assert 'torch.set_num_threads(int(schema_section(cfg, "dl")["threads"]))' in dl_run
    assert "snakemake" not in dl_run.replace("snakemake.input", "").replace("snakemake.output", "")


def test_extraction_runs_in_chunks_of_images_laid_out_from_the_validation_report(tmp_path):
    """Radiomics extraction is one job per chunk of <= radiomics.extract_chunk_images images of a centre (the
    largest centre was one job and the run's critical path), laid out as soon as the cohort is validated."""
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    (cohort / "manifest.csv").write_text("patient_id,center\nP1,Centre A\nP2,Centre A\nP3,Rome\n")
    report = tmp_path / "results" / "validation" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"center_slugs": ["centre-a", "rome"], "slices_per_phase": {
        "P1:ED": 10, "P1:ES": 10, "P2:ED": 6, "P2:ES": 6, "P3:ED": 2, "P3:ES": 2}}))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("cohort:\n  path: cohort\n  synthetic: false\nradiomics:\n  extract_chunk_images: 10\n")
    out = _dry_run(tmp_path, "--cores", "1", "--configfile", str(cfg), "--", "results/radiomics/features.parquet")
    chunks = sorted(set(re.findall(r"results/radiomics/chunks/([\w-]+/\d+-of-\d+)\.parquet", out)))
    # centre A: 32 slices -> 4 chunks of <= 10 images; Rome: 4 slices -> 1 chunk
    assert chunks == ["centre-a/0-of-4", "centre-a/1-of-4", "centre-a/2-of-4", "centre-a/3-of-4", "rome/0-of-1"]


@pytest.mark.parametrize("configfile", ["paper-cpu.yaml", "small.yaml"])
def test_shipped_size_configs_build_the_dag(tmp_path, configfile):
    out = _dry_run(tmp_path, "--cores", "2", "--configfile", str(REPO / "config" / configfile))
    assert "synth_cohort" in out and "validate_cohort" in out


def test_the_cnn_path_runs_before_radiomics_extraction():
    """Every rule between the validated cohort and the DL folds carries CNN_PATH_PRIORITY (workflow/rules/
    common.smk), and nothing else outranks it: without it Snakemake ran all extraction chunks first and the DL
    folds last, one core idle (paper-cpu size). A rule's priority does not pass to the rules it depends on, so
    dropping it from one upstream rule undoes it (a first version left out preprocessing and the splits, the
    second the tracking set-up: DL tuning then waited behind the extraction chunks each time)."""
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    names = re.findall(r"^\s*(?:rule|checkpoint) (\w+):", text, flags=re.M)
    blocks = dict(zip(names, re.split(r"^\s*(?:rule|checkpoint) \w+:", text, flags=re.M)[1:]))
    cnn_path = {"preprocess_center", "preprocess_gather", "split_patients", "mlflow_init", "dl_tune", "dl_train"}
    for name in cnn_path:
        assert "priority: CNN_PATH_PRIORITY" in blocks[name], f"rule {name} has no priority: CNN_PATH_PRIORITY"
    for name in set(blocks) - cnn_path:
        assert "priority:" not in blocks[name], f"rule {name} has a priority of its own"
    # the inputs of the DL folds are exactly the outputs of that path
    assert re.findall(r"^\s+(\w+)=", blocks["dl_train"].split("output:")[0], flags=re.M) == [
        "index", "splits", "arrays", "params", "mlflow"]
