"""Every bad input stops with a clear error naming the patient and the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cinescar.cli import main
from cinescar.cohort.validate import CohortValidationError, validate_cohort
from conftest import write_volume


def _edit_manifest(cohort, fn):
    m = pd.read_csv(cohort / "manifest.csv", dtype=str, keep_default_na=False)
    m = fn(m)
    m.to_csv(cohort / "manifest.csv", index=False)


def _problems(cohort) -> str:
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(cohort)
    return str(info.value)


def test_valid_cohort_passes(tiny_cohort):
    report = validate_cohort(tiny_cohort)
    assert report.n_patients == 18 and report.n_external == 4
    assert report.center_slugs == ["centre-a", "centre-b", "ext"]


def test_missing_file_names_patient_and_file(tiny_cohort):
    (tiny_cohort / "images" / "T002_ES.nii.gz").unlink()
    msg = _problems(tiny_cohort)
    assert "patient T002" in msg and "T002_ES.nii.gz" in msg and "not found" in msg


def test_unreadable_image(tiny_cohort):
    (tiny_cohort / "images" / "T003_ED.nii.gz").write_bytes(b"not an image at all")
    msg = _problems(tiny_cohort)
    assert "patient T003" in msg and "T003_ED.nii.gz" in msg and "unreadable" in msg


def test_geometry_mismatch(tiny_cohort):
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort / "masks" / "T004_ED.nii.gz")))
    write_volume(arr, tiny_cohort / "masks" / "T004_ED.nii.gz", spacing=(1.5, 1.5, 8.0))
    msg = _problems(tiny_cohort)
    assert "patient T004" in msg and "spacing" in msg and "masks/T004_ED.nii.gz" in msg


def test_empty_mask(tiny_cohort):
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort / "masks" / "T005_ES.nii.gz")))
    write_volume(np.zeros_like(arr), tiny_cohort / "masks" / "T005_ES.nii.gz")
    msg = _problems(tiny_cohort)
    assert "patient T005" in msg and "empty" in msg


def test_mask_not_binary(tiny_cohort):
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort / "masks" / "T006_ED.nii.gz")))
    write_volume(arr * 2, tiny_cohort / "masks" / "T006_ED.nii.gz")
    msg = _problems(tiny_cohort)
    assert "patient T006" in msg and "not binary" in msg


@pytest.mark.parametrize("value", ["", "2", "yes"])
def test_missing_or_invalid_label(tiny_cohort, value):
    _edit_manifest(tiny_cohort, lambda m: m.assign(lge=np.where(m.patient_id == "T007", value, m.lge)))
    msg = _problems(tiny_cohort)
    assert "patient T007" in msg and "lge" in msg and "manifest.csv" in msg


def test_duplicate_patient_id(tiny_cohort):
    _edit_manifest(tiny_cohort, lambda m: pd.concat([m, m[m.patient_id == "T001"]]))
    msg = _problems(tiny_cohort)
    assert "patient T001" in msg and "duplicate" in msg


def test_patient_in_both_cohorts(tiny_cohort):
    def twin(m):
        row = m[m.patient_id == "T001"].copy()
        row["cohort"] = "external"
        return pd.concat([m, row])

    _edit_manifest(tiny_cohort, twin)
    msg = _problems(tiny_cohort)
    assert "patient T001" in msg and "both the internal and the external" in msg


def test_identifying_patient_id_rejected(tiny_cohort):
    _edit_manifest(tiny_cohort, lambda m: m.assign(patient_id=np.where(m.patient_id == "T008", "Doe, John",
                                                                       m.patient_id)))
    assert "pseudonymous" in _problems(tiny_cohort)


def test_missing_column_and_manifest(tiny_cohort):
    _edit_manifest(tiny_cohort, lambda m: m.drop(columns=["lge"]))
    assert "required column" in _problems(tiny_cohort)
    (tiny_cohort / "manifest.csv").unlink()
    with pytest.raises(Exception, match="no manifest.csv"):
        validate_cohort(tiny_cohort)


def test_all_problems_reported_at_once(tiny_cohort):
    (tiny_cohort / "images" / "T002_ES.nii.gz").unlink()
    (tiny_cohort / "images" / "T003_ED.nii.gz").unlink()
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(tiny_cohort)
    assert len(info.value.problems) == 2


def test_cli_validate_exit_codes(tiny_cohort, capsys):
    assert main(["validate", str(tiny_cohort)]) == 0
    assert "OK" in capsys.readouterr().out
    (tiny_cohort / "masks" / "T009_ED.nii.gz").unlink()
    assert main(["validate", str(tiny_cohort)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "T009" in err and "Traceback" not in err
