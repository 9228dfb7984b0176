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


# ------------------------------------------------------------------ the manifest's own consistency (issue 25)


def test_scar_slices_on_an_lge_negative_patient(tiny_cohort):
    """T000 is LGE- (even index): scar slices on two myocardium slices contradict its label."""
    _edit_manifest(tiny_cohort, lambda m: m.assign(scar_slices=np.where(m.patient_id == "T000", "3;4", m.scar_slices)))
    msg = _problems(tiny_cohort)
    assert "patient T000, file" in msg and "manifest.csv" in msg and "scar_slices '3;4' given for an LGE- patient" in msg


def test_scar_slices_without_myocardium_in_either_mask(tiny_cohort):
    """T001 is LGE+ with scar_slices 3;4: clear the myocardium of those slices in both masks."""
    for phase in ("ED", "ES"):
        path = tiny_cohort / "masks" / f"T001_{phase}.nii.gz"
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        arr[3:5] = 0
        write_volume(arr, path)
    msg = _problems(tiny_cohort)
    assert "patient T001, file" in msg and "manifest.csv" in msg
    assert "scar_slices [3, 4]: none of them holds myocardium in the ED or ES mask" in msg
    # myocardium on one of them in one phase is enough: the patient then has an image of its scar
    path = tiny_cohort / "masks" / "T001_ES.nii.gz"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    arr[4] = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort / "masks" / "T003_ES.nii.gz")))[4]
    write_volume(arr, path)
    validate_cohort(tiny_cohort)


@pytest.mark.parametrize("value, ok", [("X", False), ("male", False), ("2", False), ("m", True), ("", True)])
def test_sex_within_its_documented_values(tiny_cohort, value, ok):
    _edit_manifest(tiny_cohort, lambda m: m.assign(sex=np.where(m.patient_id == "T005", value, m.sex)))
    if ok:  # the clinical model codes m as M; an empty cell is an unknown value
        validate_cohort(tiny_cohort, check_images=False)
        return
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(tiny_cohort, check_images=False)
    assert f"patient T005, file {tiny_cohort / 'manifest.csv'}: clinical column sex = {value!r} is not one of M/F" in str(
        info.value)


def test_whitespace_in_ids_and_categorical_cells_is_a_warning_naming_the_cell(tiny_cohort, capsys):
    def pad(m):
        m.loc[m.patient_id == "T004", "sex"] = " F"
        m.loc[m.patient_id == "T016", "vendor"] = "Philips "
        m.loc[m.patient_id == "T002", "patient_id"] = "T002 "  # line 4 of manifest.csv (header is line 1)
        return m

    _edit_manifest(tiny_cohort, pad)
    report = validate_cohort(tiny_cohort, check_images=False)
    assert ("manifest.csv line 4, column patient_id: 'T002 ' has leading or trailing whitespace (checked as 'T002'"
            in "\n".join(report.warnings))
    assert any(w.startswith("manifest.csv line 6, column sex: ' F'") for w in report.warnings)
    assert any(w.startswith("manifest.csv line 18, column vendor: 'Philips '") for w in report.warnings)
    assert len([w for w in report.warnings if "whitespace" in w]) == 3
    assert main(["validate", "--manifest-only", str(tiny_cohort)]) == 0
    assert "warning: manifest.csv line 4, column patient_id" in capsys.readouterr().out
