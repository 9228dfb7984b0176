"""A DICOM cine exam through `cinescar screen`, `validate` and `import-dicom --bundle` (issue 23, wiring).

The cine is written with pydicom from a tiny-study test patient's own NIfTI pixels (ED, a blend, ES, a blend:
four phases), so the DICOM path must give the NIfTI path's probabilities, and the segmenter's LV volume
curve must find ES where the study's ES is.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import dicom_fixtures as F
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from screening_fixtures import build_segmenter_bundle, train_tiny_study

from cinescar.errors import CohortError
from cinescar.models import IMAGE_MODELS as MODELS

ED, ES = 0, 2  # phases of the cine written below


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return train_tiny_study(tmp_path_factory.mktemp("dicom_screen") / "study")


@pytest.fixture(scope="module")
def seg_bundle_dir(study):
    """The tiny study's bundle with a smoke-sized segmenter (`screening_fixtures.build_segmenter_bundle`)."""
    return build_segmenter_bundle(study)


@pytest.fixture(scope="module")
def bundle(seg_bundle_dir):
    from cinescar.screening.bundle import load_bundle

    return load_bundle(seg_bundle_dir)


@pytest.fixture(scope="module")
def patient(study) -> str:
    return json.loads(study.path("results/splits/splits.json").read_text())["test"][0]


def _nifti(study, pid: str) -> dict[str, Path]:
    row = pd.read_csv(study.cohort / "manifest.csv").set_index("patient_id").loc[pid]
    return {phase: study.cohort / row[f"{phase.lower()}_image"] for phase in ("ED", "ES")}


@pytest.fixture(scope="module")
def cine_dir(study, patient, tmp_path_factory) -> Path:
    """ED, (ED+ES)/2, ES, (ED+ES)/2 of the test patient as one DICOM cine folder."""
    images = {k: sitk.ReadImage(str(v)) for k, v in _nifti(study, patient).items()}
    ed, es = (sitk.Cast(images[p], sitk.sitkFloat32) for p in ("ED", "ES"))
    blend = sitk.Cast(sitk.Round(ed * 0.5 + es * 0.5), images["ED"].GetPixelID())
    folder = tmp_path_factory.mktemp("cine") / patient
    return F.write_cine_from_images(folder, [images["ED"], blend, images["ES"], blend])


def test_a_dicom_cine_screens_like_its_nifti_exam(study, seg_bundle_dir, patient, cine_dir, tmp_path, caplog):
    from cinescar.screening.screen import screen_api

    nifti = tmp_path / patient
    nifti.mkdir()
    for phase, path in _nifti(study, patient).items():
        shutil.copyfile(path, nifti / f"{phase}.nii.gz")
    ref = screen_api(seg_bundle_dir, nifti, no_gradcam=True)
    with caplog.at_level(logging.INFO):
        got = screen_api(seg_bundle_dir, cine_dir, phases=f"ed={ED},es={ES}", no_gradcam=True,
                         out=tmp_path / "result.json")
    assert got["mask_source"] == {"ED": "predicted", "ES": "predicted"}
    for m in MODELS:
        assert got["models"][m]["probability"] == pytest.approx(ref["models"][m]["probability"], abs=1e-6)
    sel = got["phase_selection"]
    assert (sel["ed"], sel["es"], sel["ed_method"], sel["es_method"]) == (ED, ES, "given", "given")
    text = (tmp_path / "result.json").read_text() + caplog.text
    assert F.PATIENT_ID not in text and "Doe" not in text  # the DICOM patient module stays in the files


def test_es_is_picked_by_the_bundles_segmenter(seg_bundle_dir, cine_dir, monkeypatch):
    """Without --phases, ES is the minimum of the bundle's segmenter's LV volume curve (3 mid slices, every
    phase). The smoke segmenter's curve is nearly flat on this tiny study (it is 3 epochs old), so its volume
    is spied on and shifted by the blend weight: the ranking then follows the anatomy (ES smallest) while the
    call still goes through the bundle's own segmenter on the cine's own sub-stacks."""
    from cinescar.segmentation.inference import Segmenter
    from cinescar.screening.screen import screen_api

    real = Segmenter.lv_volume_ml
    calls = []

    def spied(self, image):
        calls.append(image.GetSize())
        value = real(self, image)
        return value + 100.0 * {0: 2, 1: 1, 2: 0, 3: 1}[len(calls) - 1]  # ED, blend, ES, blend

    monkeypatch.setattr(Segmenter, "lv_volume_ml", spied)
    sel = screen_api(seg_bundle_dir, cine_dir, no_gradcam=True)["phase_selection"]
    assert (sel["ed"], sel["es"]) == (ED, ES), sel["lv_volume_ml"]
    assert sel["ed_method"] == "smallest trigger time" and sel["es_method"] == "smallest LV cavity volume"
    assert len(calls) == 4 and all(size[2] == 3 for size in calls)  # 4 phases x 3 mid-ventricular slices
    assert len(sel["volume_slices"]) == 3


def test_without_a_segmenter_a_cine_is_a_named_error(cine_dir):
    from cinescar.screening.dicom_exam import read_dicom_exam

    with pytest.raises(CohortError, match="no segmenter") as err:
        read_dicom_exam(cine_dir, "P1", None)
    assert "P1" in str(err.value) and cine_dir.name in str(err.value) and "--phases" in str(err.value)


def test_dicom_out_seg_reads_back_to_the_masks_screening_used(bundle, seg_bundle_dir, cine_dir, tmp_path, caplog):
    import highdicom as hd
    import pydicom

    from cinescar.dicom import read_cine
    from cinescar.screening.screen import screen_api

    with caplog.at_level(logging.INFO):
        result = screen_api(seg_bundle_dir, cine_dir, phases=f"ed={ED},es={ES}", dicom_out=tmp_path / "dcm",
                            no_gradcam=True)
    assert F.PATIENT_ID not in caplog.text + json.dumps(result)
    cine = read_cine(cine_dir, "P")
    normal = np.array(cine.direction).reshape(3, 3)[:, 2]
    for phase, index in (("ED", ED), ("ES", ES)):
        mask, stack = bundle.segmenter.segment_image(cine.phase_image(index))
        expected = {1: sitk.GetArrayFromImage(mask) == 1, 2: stack.on_image_grid() == 2}
        assert expected[1].any()
        seg = hd.seg.segread(result["dicom_out"]["seg"][phase])
        source = pydicom.dcmread(cine.folder / cine.sources[index][0].rel, stop_before_pixels=True)
        assert seg.PatientID == source.PatientID and seg.StudyInstanceUID == source.StudyInstanceUID
        frames = seg.pixel_array if seg.pixel_array.ndim == 3 else seg.pixel_array[None]
        got = {1: np.zeros_like(expected[1]), 2: np.zeros_like(expected[2])}
        for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
            ipp = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
            s = int(np.argmin(np.abs(cine.slice_positions_mm - ipp @ normal)))
            got[item.SegmentIdentificationSequence[0].ReferencedSegmentNumber][s] = frames[i].astype(bool)
        for label in (1, 2):
            np.testing.assert_array_equal(got[label], expected[label])
    sc = pydicom.dcmread(result["dicom_out"]["secondary_capture"])
    assert "research use" in sc.SeriesDescription and sc.BurnedInAnnotation == "YES"
    assert sc.pixel_array.ndim == 3 and sc.pixel_array.shape[2] == 3


def test_a_multiphase_folder_in_a_manifest_is_refused_by_name(study, patient, cine_dir, tmp_path):
    from cinescar.cohort.validate import CohortValidationError, validate_cohort

    cohort = tmp_path / "cohort"
    shutil.copytree(study.cohort, cohort)
    shutil.copytree(cine_dir, cohort / "dicom" / patient)
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[manifest.patient_id == patient, "ed_image"] = f"dicom/{patient}"
    manifest.to_csv(cohort / "manifest.csv", index=False)
    with pytest.raises(CohortValidationError) as err:  # every problem, each naming patient and file
        validate_cohort(cohort)
    message = str(err.value)
    assert "multi-phase cine: use cinescar import-dicom or screen the folder directly" in message
    assert patient in message and f"dicom/{patient}" in message


def test_import_dicom_with_a_bundle_picks_es_and_writes_masks(bundle, seg_bundle_dir, cine_dir, tmp_path):
    """`import-dicom --bundle`: ES from the segmenter's curve, and the manifest's masks are its myocardium."""
    from cinescar.dicom import read_cine
    from cinescar.dicom.cli import bundle_segmenter
    from cinescar.dicom.importer import import_dicom_api

    root = tmp_path / "exams"
    shutil.copytree(cine_dir, root / cine_dir.name)
    lv, seg = bundle_segmenter(seg_bundle_dir)
    summary = import_dicom_api(root, tmp_path / "cohort", lv_volume_ml=lv, segmenter=seg)
    info = summary["patients"][0]
    phases = pd.read_csv(tmp_path / "cohort" / "phase_selection.csv")
    assert summary["masks"] and info["es_method"] == "smallest LV cavity volume"
    assert info["es"] == int(np.argmin(phases["lv_volume_ml"].to_numpy()))
    row = pd.read_csv(tmp_path / "cohort" / "manifest.csv").iloc[0]
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cohort" / row["es_mask"])))
    expected, _ = bundle.segmenter.segment_image(read_cine(cine_dir, "P").phase_image(info["es"]))
    np.testing.assert_array_equal(written, sitk.GetArrayFromImage(expected))
    assert written.any()


def test_the_readmes_dicom_commands_run(seg_bundle_dir, cine_dir, tmp_path):
    """README "A DICOM exam in, a DICOM SEG out": its three command lines, run as written (a console script
    and `python -c` each, in a folder holding results/bundle, EXAMS/P017 and labels.csv)."""
    import os
    import re
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "README.md").read_text(encoding="utf-8")
    section = text.split("### A DICOM exam in, a DICOM SEG out", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 3 and "--dicom-out" in lines[0] and "segread" in lines[1] and "import-dicom" in lines[2]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bundle").symlink_to(seg_bundle_dir)
    shutil.copytree(cine_dir, tmp_path / "EXAMS" / "P017")
    (tmp_path / "labels.csv").write_text("patient_id,lge\nP017,1\n")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}  # this checkout's library, whatever .venv installed
    outputs = []
    for line in lines:
        proc = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    assert sorted(p.name for p in (tmp_path / "P017_dicom").iterdir()) == [
        "P017_ED_seg.dcm", "P017_ES_seg.dcm", "P017_result_sc.dcm"]
    n_slices = sitk.ReadImage(str(next(cine_dir.iterdir()))).GetSize()  # one file: (cols, rows, 1)
    assert outputs[1].strip().startswith("['Myocardium', 'LV cavity'] (")
    assert outputs[1].strip().endswith(f"{n_slices[1]}, {n_slices[0]}, 2)")
    cohort = tmp_path / "my_dicom_cohort"
    manifest = pd.read_csv(cohort / "manifest.csv")
    assert manifest["patient_id"].tolist() == ["P017"] and manifest["lge"].tolist() == [1]
    assert (cohort / manifest["es_mask"][0]).is_file() and (cohort / "phase_selection.csv").is_file()
