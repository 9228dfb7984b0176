"""Structurally valid files that cannot be a cine exam are refused (or warned about) by validate and screen alike."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cinescar.cohort import plausibility
from cinescar.cohort.validate import CohortValidationError, check_exam, validate_cohort
from cinescar.errors import CinescarError
from cinescar.preprocessing.images import resample_slice
from conftest import write_volume


def _files(cohort, pid):
    return {f"{ph.lower()}_{kind}": cohort / f"{'images' if kind == 'image' else 'masks'}" / f"{pid}_{ph}.nii.gz"
            for ph in ("ED", "ES") for kind in ("image", "mask")}


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _errors(cohort, pid):
    warnings: list[str] = []
    problems, _ = check_exam(pid, _files(cohort, pid), warnings=warnings)
    return " | ".join(str(p) for p in problems), warnings


def test_the_tiny_cohort_is_plausible(tiny_cohort):
    report = validate_cohort(tiny_cohort)
    assert not any(w.startswith("patient") for w in report.warnings), report.warnings


def test_mask_of_all_ones_is_refused(tiny_cohort):
    path = tiny_cohort / "masks" / "T001_ED.nii.gz"
    write_volume(np.ones_like(_read(path)), path)
    msg, _ = _errors(tiny_cohort, "T001")
    assert "patient T001" in msg and "T001_ED.nii.gz" in msg and "not a myocardium contour" in msg


def test_swapped_slice_axis_is_refused(tiny_cohort):
    for kind in ("images", "masks"):
        path = tiny_cohort / kind / "T002_ED.nii.gz"
        write_volume(np.ascontiguousarray(_read(path).transpose(1, 0, 2)), path, spacing=(1.2, 8.0, 1.2))
    msg, _ = _errors(tiny_cohort, "T002")
    assert "slice spacing 1.2 mm is not coarser" in msg and "pixel spacing y = 8 mm" in msg and "T002_ED" in msg


def test_2d_image_where_a_stack_belongs_is_refused(tiny_cohort):
    for kind in ("images", "masks"):
        path = tiny_cohort / kind / "T003_ES.nii.gz"
        img = sitk.GetImageFromArray(_read(path)[4])
        img.SetSpacing((1.2, 1.2))
        sitk.WriteImage(img, str(path))
    msg, _ = _errors(tiny_cohort, "T003")
    assert "a 2D image where a short-axis stack" in msg and "T003_ES.nii.gz" in msg


def test_same_file_or_same_pixels_as_ed_and_es_is_refused(tiny_cohort):
    files = _files(tiny_cohort, "T004")
    files["es_image"], files["es_mask"] = files["ed_image"], files["ed_mask"]
    problems, _ = check_exam("T004", files)
    assert any("same file is given as the ED and the ES image" in str(p) for p in problems)
    shutil.copyfile(tiny_cohort / "images/T005_ED.nii.gz", tiny_cohort / "images/T005_ES.nii.gz")
    shutil.copyfile(tiny_cohort / "masks/T005_ED.nii.gz", tiny_cohort / "masks/T005_ES.nii.gz")
    msg, _ = _errors(tiny_cohort, "T005")
    assert "identical pixels" in msg and "T005_ES.nii.gz" in msg


def test_colour_pixels_are_refused(tiny_cohort):
    path = tiny_cohort / "images" / "T006_ED.nii.gz"
    arr = _read(path)
    rgb = sitk.GetImageFromArray(np.stack([arr] * 3, axis=-1).astype(np.uint8), isVector=True)
    rgb.SetSpacing((1.2, 1.2, 8.0))
    sitk.WriteImage(rgb, str(tiny_cohort / "images" / "T006_ED.mha"))
    files = _files(tiny_cohort, "T006")
    files["ed_image"] = tiny_cohort / "images" / "T006_ED.mha"
    problems, _ = check_exam("T006", files)
    assert any("3 components" in str(p) and "T006_ED.mha" in str(p) for p in problems)


def test_too_few_slices_with_myocardium(tiny_cohort):
    path = tiny_cohort / "masks" / "T007_ED.nii.gz"
    mask = _read(path)
    few = mask.copy()
    few[2:] = 0
    write_volume(few, path)
    msg, _ = _errors(tiny_cohort, "T007")
    assert "only 2 slice(s) hold myocardium" in msg
    some = mask.copy()
    some[4:] = 0
    write_volume(some, path)
    msg, warnings = _errors(tiny_cohort, "T007")
    assert msg == "" and any("only 4 slices hold myocardium" in w for w in warnings)
    # validation lists the warning with the patient
    assert any(w.startswith("patient T007: ED: only 4 slices") for w in validate_cohort(tiny_cohort).warnings)


def test_nan_voxels_in_nifti_are_found(tiny_cohort):
    path = tiny_cohort / "images" / "T008_ES.nii.gz"
    arr = _read(path).astype(np.float32)
    arr[3, 10, 10] = np.nan
    arr[4, 11, 11] = np.inf
    write_volume(arr, path)
    assert np.isfinite(_read(path)).all()  # SimpleITK's NIfTI reader hides them (reads 0)
    with pytest.raises(CohortValidationError, match="patient T008, file .*T008_ES.nii.gz: ES: image holds NaN"):
        validate_cohort(tiny_cohort)


def test_implausible_spacing_and_resampled_size():
    f = plausibility.check_spacing("ED", (0.05, 0.05, 8.0), 10, "ed_image")
    assert f.errors and "0.05 mm is outside" in f.errors[0][0]
    f = plausibility.check_spacing("ED", (3.5, 3.5, 10.0), 10, "ed_image")
    assert not f.errors and "unusual" in f.warnings[0]
    f = plausibility.check_resampled_size("ED", (4096, 4096), (1.0, 1.0), 1.0, "ed_image")
    assert f.errors and "limit 2048" in f.errors[0][0]
    with pytest.raises(CinescarError, match="limit 2048"):  # refused before SimpleITK allocates the output
        resample_slice(np.zeros((300, 300), np.float32), (50.0, 50.0), 1.0, sitk.sitkLinear)


def test_validate_reports_plausibility_with_patient_and_file(tiny_cohort):
    path = tiny_cohort / "masks" / "T009_ES.nii.gz"
    write_volume(np.ones_like(_read(path)), path)
    m = pd.read_csv(tiny_cohort / "manifest.csv", dtype=str, keep_default_na=False)
    m.loc[m.patient_id == "T010", "es_image"] = m.loc[m.patient_id == "T010", "ed_image"]
    m.to_csv(tiny_cohort / "manifest.csv", index=False)
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(tiny_cohort)
    text = str(info.value)
    assert "patient T009, file" in text and "not a myocardium contour" in text
    assert "patient T010" in text and "same file is given as the ED and the ES image" in text
