"""The DICOM cine reader on the three layouts scanners write: pixels, timing, geometry, ED/ES exactly."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import dicom_fixtures as F
from cinescar.cohort.contract import geometry_mismatch, read_volume
from cinescar.dicom import read_cine, read_exam, select_phases
from cinescar.dicom.phases import parse_phases, write_phase_csv
from cinescar.errors import CinescarError, CohortError


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {
        "one_series": F.write_classic(root / "one_series"),
        "series_per_slice": F.write_classic(root / "series_per_slice", nested=True, series_per_slice=True,
                                            n_slices=7, n_phases=6, es=2),
        "enhanced": F.write_enhanced(root / "enhanced", n_slices=5, n_phases=7, es=4),
    }


@pytest.mark.parametrize("layout", ["one_series", "series_per_slice", "enhanced"])
def test_pixels_timing_and_geometry_are_exact(layouts, layout, caplog):
    exam = layouts[layout]
    with caplog.at_level(logging.INFO):
        cine = read_cine(exam.folder, "P001")
    assert cine.pixels.dtype == np.float32
    assert cine.pixels.shape == (exam.n_phases, exam.n_slices, F.SIZE, F.SIZE)
    np.testing.assert_array_equal(cine.pixels, exam.expected())  # rescale applied, phases and slices in order
    offset = 0.3 * np.arange(exam.n_slices).mean() if layout == "series_per_slice" else 0.0
    np.testing.assert_allclose(cine.trigger_times_ms, np.array(exam.trigger_times) + offset, atol=1e-9)
    np.testing.assert_allclose(cine.slice_positions_mm - cine.slice_positions_mm[0],
                               F.SLICE_GAP * np.arange(exam.n_slices), atol=1e-6)
    assert cine.spacing == pytest.approx((F.PIXEL_SPACING[1], F.PIXEL_SPACING[0], F.SLICE_GAP))
    np.testing.assert_allclose(cine.origin, F.ORIGIN, atol=1e-6)
    np.testing.assert_allclose(np.array(cine.direction).reshape(3, 3),
                               np.column_stack([F.ROW, F.COL, F.normal()]), atol=1e-9)
    assert cine.warnings == []
    refs = {(r.sop_instance_uid, r.frame_number) for phase in cine.sources for r in phase}
    assert len(refs) == exam.n_phases * exam.n_slices  # every image referenced once
    assert F.PATIENT_ID not in caplog.text and "Doe" not in caplog.text


def test_phase_image_matches_simpleitk_series_reader(layouts, tmp_path):
    """One phase's image has the geometry SimpleITK's own DICOM reader gives that phase's files."""
    exam = layouts["one_series"]
    cine = read_cine(exam.folder, "P001")
    phase = 2
    for ref in cine.sources[phase]:
        (tmp_path / ref.rel).write_bytes((exam.folder / ref.rel).read_bytes())
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    itk = reader.Execute()
    mine = cine.phase_image(phase)
    assert geometry_mismatch(itk, mine) is None
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk).astype(np.float32), sitk.GetArrayFromImage(mine))


def test_nifti_round_trip_keeps_pixels_and_geometry(layouts, tmp_path):
    cine = read_cine(layouts["enhanced"].folder, "P001")
    image = cine.phase_image(1)
    sitk.WriteImage(image, str(tmp_path / "ed.nii.gz"))
    back = read_volume(tmp_path / "ed.nii.gz", "P001")
    assert geometry_mismatch(image, back) is None
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), cine.pixels[1])


def test_sub_stack_keeps_its_true_origin(layouts):
    cine = read_cine(layouts["one_series"].folder, "P001")
    sub = cine.phase_image(0, [2, 3, 4])
    assert sub.GetSize() == (F.SIZE, F.SIZE, 3)
    np.testing.assert_allclose(sub.GetOrigin(), F.position(2), atol=1e-6)
    with pytest.raises(ValueError):
        cine.phase_image(0, [1, 3])


@pytest.mark.parametrize("layout", ["one_series", "series_per_slice", "enhanced"])
def test_ed_is_first_trigger_and_es_the_smallest_cavity(layouts, layout):
    exam = layouts[layout]
    calls = []

    def lv(image):
        calls.append(image.GetSize()[2])
        return F.toy_lv_volume_ml(image)

    result = read_exam(exam.folder, "P001", lv_volume_ml=lv)
    sel = result.selection
    assert (sel.ed, sel.es) == (0, exam.es)
    assert sel.ed_method == "smallest trigger time" and sel.es_method == "smallest LV cavity volume"
    assert calls == [3] * exam.n_phases  # the curve is measured on 3 mid slices of every phase
    assert sel.volume_slices == list(range((exam.n_slices - 3) // 2, (exam.n_slices - 3) // 2 + 3))
    assert int(np.argmin(sel.lv_volume_ml)) == exam.es
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.es_image), exam.expected()[exam.es])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.ed_image), exam.expected()[0])


def test_phase_selection_serialises(layouts, tmp_path):
    cine = read_cine(layouts["one_series"].folder, "P001")
    sel = select_phases(cine, lv_volume_ml=F.toy_lv_volume_ml)
    assert '"es": 3' in sel.to_json()
    path = write_phase_csv([sel], tmp_path / "phase_selection.csv")
    rows = path.read_text().splitlines()
    assert len(rows) == 1 + cine.n_phases
    assert rows[1 + 3].split(",")[4:6] == ["0", "1"]  # phase 3: not ED, ES


def test_explicit_phases_win_and_are_checked(layouts):
    cine = read_cine(layouts["one_series"].folder, "P001")
    sel = select_phases(cine, phases={"ed": 1, "es": 5})
    assert (sel.ed, sel.es, sel.ed_method, sel.es_method) == (1, 5, "given", "given")
    with pytest.raises(CohortError, match="outside the cine's phases"):
        select_phases(cine, phases={"ed": 0, "es": 99})
    with pytest.raises(CohortError, match="ES needs an LV volume"):
        select_phases(cine)
    assert parse_phases("ed=0, es=9") == {"ed": 0, "es": 9}
    with pytest.raises(CinescarError, match="expected ed=I,es=J"):
        parse_phases("systole=3")


def test_enhanced_with_nominal_trigger_delay(tmp_path):
    """Enhanced MR as Philips writes it: the trigger delay in the cardiac synchronisation sequence."""
    exam = F.write_enhanced(tmp_path / "enh", n_slices=4, n_phases=5, es=2)
    ds = pydicom.dcmread(exam.files[0])
    for item in ds.PerFrameFunctionalGroupsSequence:
        unassigned = item.UnassignedPerFrameConvertedAttributesSequence[0]
        trigger = float(unassigned.TriggerTime)
        del unassigned.TriggerTime
        sync = pydicom.Dataset()
        sync.NominalCardiacTriggerDelayTime = trigger
        item.CardiacSynchronizationSequence = pydicom.Sequence([sync])
    ds.save_as(exam.files[0])
    cine = read_cine(exam.folder, "P001")
    np.testing.assert_array_equal(cine.pixels, exam.expected())
    np.testing.assert_allclose(cine.trigger_times_ms, exam.trigger_times)


@pytest.mark.parametrize("layout", ["one_series", "enhanced"])
def test_read_speed_benchmark_with_two_phases(layout, monkeypatch, capsys):
    """benchmarks/dicom_read_speed.py --phases 2 divided by zero (ES at phases // 3 = 0); now ES is phase 1."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dicom_read_speed.py"
    spec = importlib.util.spec_from_file_location("dicom_read_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(F, "SIZE", F.SIZE)  # the benchmark sets the fixtures' matrix: restored afterwards
    assert bench.main(["--phases", "2", "--slices", "2", "--size", "32", "--repeats", "1", "--layout", layout]) == 0
    assert "2 phases" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--phases", "1"])


@pytest.mark.parametrize("layout", F.LAYOUTS)
def test_a_contracting_cine_has_its_smallest_cavity_at_es_in_every_layout(layout, tmp_path):
    """The cine `benchmarks/dicom_es_picking.py` builds from an ED stack (`contracting_cine`): the cavity
    shrinks strictly to ES and grows back, the epicardium stays, and each layout reads back pixel for pixel."""
    ed = np.stack([F.frame_pixels(0, s) for s in range(4)])
    image = sitk.GetImageFromArray(ed)
    image.SetSpacing((1.25, 1.5, 8.0))
    mask = sitk.GetImageFromArray((ed == F.MYO).astype(np.uint8))
    mask.CopyInformation(image)
    phases = F.contracting_cine(image, mask, n_phases=8, es=3)
    arrays = np.stack([sitk.GetArrayFromImage(p) for p in phases]).astype(np.float32)
    cavity = (arrays > (F.CAVITY + F.MYO) / 2).sum(axis=(1, 2, 3))
    assert (np.diff(cavity[:4]) < 0).all()
    assert (np.diff(cavity[3:]) > 0).all() and int(np.argmin(cavity)) == 3
    assert ((arrays > F.BACKGROUND / 2).sum(axis=(1, 2, 3)) == (ed > F.BACKGROUND / 2).sum()).all()  # epicardium
    np.testing.assert_array_equal(arrays[0], ed)
    folder = F.write_cine_from_images(tmp_path / "P1", phases, layout)
    exam = read_exam(folder, "P1", lv_volume_ml=_bright_volume)
    np.testing.assert_array_equal(exam.cine.pixels, arrays)
    assert (exam.selection.ed, exam.selection.es) == (0, 3)


def _bright_volume(image) -> float:
    """The toy curve of a contracting cine: pixels brighter than halfway between myocardium and cavity."""
    return float((sitk.GetArrayFromImage(image) > (F.CAVITY + F.MYO) / 2).sum())
