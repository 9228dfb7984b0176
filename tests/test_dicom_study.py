"""A folder of DICOM cine exams -> `cinescar import-dicom` -> a cohort the workflow takes (issue 23's last goal).

The import half of `benchmarks/dicom_cohort_study.py` on four small patients: each contract-cohort patient's ED
stack becomes a contracting cine with a known ES (`dicom_fixtures.contracting_cine`), written in the three
layouts; `labels.csv` carries the manifest's labels and clinical columns and `es_phase` (no segmenter: the
mask columns stay empty). The imported cohort must validate, hold the right ED/ES pixels and
`phase_selection.csv`, and a dry run of the workflow on it (masks predicted, a masks-only cohort training the
segmenter) must plan the report. The full run is the benchmark's job, not a test's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import dicom_fixtures as F
from cinescar.cli import main as cli_main
from cinescar.cohort.contract import read_manifest, read_volume
from cinescar.cohort.validate import CohortValidationError, validate_cohort
from cinescar.dicom.importer import PHASE_CSV
from conftest import make_cohort

REPO = Path(__file__).resolve().parents[1]
CINES = {"P000": (8, 3, "one_series"), "P001": (10, 4, "series_per_slice"), "P002": (6, 2, "enhanced"),
         "P003": (9, 5, "one_series")}
"""patient -> (phases, ES phase, layout); P003 is the external patient."""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dicom_study")
    source = make_cohort(tmp / "source", n_internal=3, n_external=1, size=48, n_slices=6)
    manifest = pd.read_csv(source / "manifest.csv", dtype=str, keep_default_na=False)
    manifest["patient_id"] = manifest["patient_id"].str.replace("T", "P")  # never the masks-only cohort's IDs
    root, phases = tmp / "exams", {}
    for _, row in manifest.iterrows():
        pid = row["patient_id"]
        n_phases, es, layout = CINES[pid]
        ed = sitk.ReadImage(str(source / row["ed_image"]))
        mask = sitk.ReadImage(str(source / row["ed_mask"]))
        phases[pid] = F.contracting_cine(ed, mask, n_phases, es)
        F.write_cine_from_images(root / pid, phases[pid], layout)
    labels = manifest.drop(columns=["ed_image", "ed_mask", "es_image", "es_mask"])
    labels["es_phase"] = [CINES[p][1] for p in labels["patient_id"]]
    labels.to_csv(tmp / "labels.csv", index=False)
    out = tmp / "cohort"
    assert cli_main(["import-dicom", str(root), "--out", str(out), "--labels", str(tmp / "labels.csv")]) == 0
    return {"tmp": tmp, "out": out, "phases": phases, "labels": labels}


def test_the_imported_cohort_validates_without_masks(study):
    report = validate_cohort(study["out"], cfg={})  # the split check needs more patients (the benchmark's 22)
    assert report.n_patients == 4 and report.n_internal == 3 and report.n_external == 1
    assert report.patients_without_masks == 4
    assert set(report.slices_per_phase.values()) == {6}
    with pytest.raises(CohortValidationError, match="empty ed_mask path.*segmentation.masks: manual"):
        validate_cohort(study["out"], cfg={"segmentation": {"masks": "manual"}})


def test_manifest_carries_the_labels(study):
    manifest = read_manifest(study["out"]).set_index("patient_id")
    labels = study["labels"].set_index("patient_id")
    assert sorted(manifest.index) == sorted(CINES)
    assert manifest["ed_mask"].isna().all() and manifest["es_mask"].isna().all()
    for col in ("lge", "center", "vendor", "cohort", "age", "sex", "LVEF", "scar_slices"):
        got = manifest[col].fillna("").astype(str)
        assert (got.loc[labels.index] == labels[col].astype(str)).all(), col
    assert "es_phase" not in manifest.columns


def test_ed_es_and_phase_selection(study):
    out = study["out"]
    table = pd.read_csv(out / PHASE_CSV, dtype={"patient_id": str})
    assert len(table) == sum(n for n, _, _ in CINES.values())
    manifest = read_manifest(out).set_index("patient_id")
    for pid, (n_phases, es, layout) in CINES.items():
        rows = table[table["patient_id"] == pid].sort_values("phase")
        assert rows["phase"].tolist() == list(range(n_phases))
        assert rows.loc[rows["is_ed"] == 1, "phase"].tolist() == [0], layout
        assert rows.loc[rows["is_es"] == 1, "phase"].tolist() == [es], layout
        assert set(rows["ed_method"]) == {"smallest trigger time"} and set(rows["es_method"]) == {"given"}
        assert np.all(np.diff(rows["trigger_time_ms"].to_numpy()) > 0)
        for col, phase in (("ed_image", 0), ("es_image", es)):
            image = read_volume(out / manifest.loc[pid, col], pid)
            truth = study["phases"][pid][phase]
            np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(truth))
            np.testing.assert_allclose(image.GetSpacing(), truth.GetSpacing(), rtol=1e-5)
            np.testing.assert_allclose(image.GetOrigin(), truth.GetOrigin(), atol=1e-3)


def test_a_dry_run_of_the_workflow_plans_the_report(study):
    tmp = study["tmp"]
    extra = make_cohort(tmp / "masks_only", n_internal=2, n_external=0, size=48, n_slices=6)
    override = tmp / "dicom_study.yaml"
    override.write_text(f"cohort:\n  path: {study['out']}\n  synthetic: false\n"
                        f"segmentation:\n  masks: predicted\n  extra_cohorts: [{extra}]\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp / "run"),
                           "-n", "--cores", "2", "--configfile", str(REPO / ".test/config.yaml"), str(override)],
                          capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    stats = text[text.index("Job stats:"):]
    for rule in ("validate_cohort", "segmentation_train", "dl_train", "report", "bundle"):
        assert f"\n{rule} " in stats, rule
    assert "synth_cohort" not in stats


def test_segmentation_gather_without_any_manual_mask(tmp_path, monkeypatch):
    """A cohort without contours (every study mask predicted, the segmenter trained on extra_cohorts only): the
    gather used to stop on KeyError 'dice_lv_cavity' (found by benchmarks/dicom_cohort_study.py). Now overlap.csv
    keeps its columns with no row (the bundle reads it as no held-out Dice) and the report says "not measurable"."""
    from cinescar.config import load_config
    from cinescar.evaluation.report_inputs import ReportInputs
    from cinescar.evaluation.report_segmentation import segmentation_section
    from cinescar.segmentation.run import OVERLAP_COLUMNS, gather_job

    monkeypatch.chdir(tmp_path)  # MLflow's records land in the test's folder
    rows = [{"patient_id": f"P{i:03d}", "phase": phase, "network": "fold0", "confidence": 0.9,
             "pred_lv_volume_ml": 120.0 - 40 * (phase == "ES"), "pred_myocardium_ml": 90.0, "pred_lv_mass_g": 95.0,
             "pred_mwt_mm": 9.0, "center": "Rome", "vendor": "SynthVendor",
             "role": ["development", "test", "external"][i], "has_manual": False, "qc_flags": "",
             "pred_lvef": 33.3} for i in range(3) for phase in ("ED", "ES")]
    pd.DataFrame(rows).to_parquet(tmp_path / "rome.parquet", index=False)
    seg = tmp_path / "segmentation"
    outputs = {k: str(seg / f"{k}.csv") for k in ("per_stack", "overlap", "agreement", "qc")}
    result = gather_job({"tables": [str(tmp_path / "rome.parquet")]}, outputs, {"cfg": load_config()})
    assert result == {"dice_myocardium": {}}
    overlap = pd.read_csv(outputs["overlap"])
    assert overlap.empty and list(overlap.columns) == OVERLAP_COLUMNS
    assert set(pd.read_csv(outputs["qc"])["role"]) == {"development", "test", "external"}
    html = "".join(segmentation_section(ReportInputs.from_folder(seg)))
    assert "no study patient has a manual mask" in html
