"""Several external cohorts (`cohort = external:<name>`): validated, split as external, scored and reported
each on its own (issue 12)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from cinescar.cohort.contract import cohort_role, external_name
from cinescar.cohort.validate import CohortValidationError, validate_cohort
from cinescar.evaluation.report import build_report
from cinescar.evaluation.report_inputs import ReportInputs
from cinescar.evaluation.study import evaluate_study
from workflow_names import evaluation_outputs
from cinescar.cohort.splits import make_splits
from test_report import CFG, make_study


def test_cohort_roles_and_names():
    assert cohort_role("internal") == "internal" and cohort_role("external") == "external"
    assert cohort_role("external:Rome") == "external" and external_name("external:Rome") == "Rome"
    assert external_name("external") == "external" and external_name("internal") is None
    for bad in ("External", "external:", "test", "external:/etc", ""):
        assert cohort_role(bad) is None, bad


def _multi_external(root: Path) -> dict:
    """The report fixture with its 20 external patients split into two named external cohorts."""
    paths = make_study(root)
    man = pd.read_csv(root / "manifest.csv", dtype={"patient_id": str})
    ext = man.index[man["cohort"] == "external"]
    man.loc[ext[:10], "cohort"] = "external:Rome"
    man.loc[ext[10:], "cohort"] = "external:Oslo"
    man.loc[ext[10:], "center"] = "Oslo"
    man.to_csv(root / "manifest.csv", index=False)
    return paths


def test_validation_accepts_named_external_cohorts(tmp_path):
    _multi_external(tmp_path)
    man = pd.read_csv(tmp_path / "manifest.csv", dtype={"patient_id": str})
    for col in ("ed_image", "ed_mask", "es_image", "es_mask"):  # one file per patient and column
        man[col] = man["patient_id"] + f"_{col}.nii.gz"
    man.to_csv(tmp_path / "manifest.csv", index=False)
    report = validate_cohort(tmp_path, check_images=False)
    assert report.n_external == 20 and report.n_internal == 54
    man = pd.read_csv(tmp_path / "manifest.csv")
    man.loc[man.index[-1], "cohort"] = "externa:Rome"
    man.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(CohortValidationError, match="externa:Rome"):
        validate_cohort(tmp_path, check_images=False)


def test_named_external_patients_are_split_external(tmp_path):
    _multi_external(tmp_path)
    man = pd.read_csv(tmp_path / "manifest.csv", dtype={"patient_id": str})
    splits = make_splits(man, test_fraction=0.2, folds=3, seed=0)
    ext = set(man.loc[man["cohort"].str.startswith("external"), "patient_id"])
    assert set(splits["external"]) == ext and len(ext) == 20
    assert not ext & set(splits["test"]) and all(not ext & set(f["train"] + f["val"]) for f in splits["folds"])


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    cwd = Path.cwd()
    os.chdir(root)  # MLflow's offline records land in the fixture folder
    try:
        paths = _multi_external(root)
        files = evaluate_study(paths, root / "index.parquet", root / "splits.json", root / "manifest.csv",
                               evaluation_outputs(root / "evaluation"), CFG)
        html = build_report(ReportInputs.from_folder(root / "evaluation"), root / "report.html",
                            CFG).read_text(encoding="utf-8")
    finally:
        os.chdir(cwd)
    return files, html


def test_each_external_cohort_is_scored_on_its_own(multi):
    files, html = multi
    mci = pd.read_csv(files["metrics_ci"])
    names = {"external:Oslo", "external:Rome"}
    assert names <= set(mci["cohort"])
    final = mci[(mci["fold"] == -1) & (mci["operating_point"] == "pooled")]
    for model, g in final.groupby("model"):
        by = g.set_index("cohort")
        # the pooled external row is the sum of its two cohorts, at the same cut-off
        assert by.loc[list(names), "n_patients"].sum() == by.loc["external", "n_patients"] == 20
        assert by.loc[list(names), "tp"].sum() == by.loc["external", "tp"]
        assert by.loc[list(names), "cutoff"].nunique() == 1
    for name in ("calibration", "utility", "auc_differences", "decision_curve"):
        assert names <= set(pd.read_csv(files[name])["cohort"]), name
    ev = json.loads(files["evidence"].read_text())
    assert ev["external_cohorts"] == ["Oslo", "Rome"]
    assert {c["cohort"] for c in ev["cohorts"]} >= names
    t2 = pd.read_csv(files["table2"])
    assert {"All external cohorts", "External cohort Oslo", "External cohort Rome"} == set(t2["section"])
    assert "external cohort Rome" in html and "External cohorts, each reported on its own: Oslo, Rome" in html


def test_the_bundle_lists_each_external_cohort(tmp_path):
    from cinescar.screening.publish import external_cohorts

    _multi_external(tmp_path)
    man = pd.read_csv(tmp_path / "manifest.csv").drop_duplicates("patient_id")
    listed = external_cohorts(tmp_path / "manifest.csv")
    assert [c["name"] for c in listed] == ["Oslo", "Rome"]
    for c in listed:
        rows = man[man["cohort"] == f"external:{c['name']}"]
        assert c["n_patients"] == len(rows) == 10 and c["n_pos"] == int(rows["lge"].sum())
