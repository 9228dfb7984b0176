"""The malformed-folder matrix: each folder is either a named error (patient, file, problem) or a correct stack.

Zero silent mis-stacks is the goal: a folder that reads must give exactly the expected pixels; one that
does not must say what is wrong and where, without any patient identifier.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import dicom_fixtures as F
from cinescar.dicom import read_cine
from cinescar.errors import CohortError

PID = "P042"


def _rotate(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues' rotation of v about a unit axis."""
    a = np.radians(degrees)
    return v * np.cos(a) + np.cross(axis, v) * np.sin(a) + axis * np.dot(axis, v) * (1 - np.cos(a))


def _new_uid(ds: pydicom.Dataset) -> pydicom.Dataset:
    ds = copy.deepcopy(ds)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def tilted_slice(items):
    row, col = F.ROW, _rotate(F.COL, F.ROW, 3.0)  # slice 2 tilted 3 degrees through-plane
    for p, s, ds in items:
        if s == 2:
            ds.ImageOrientationPatient = [*map(float, row), *map(float, col)]
    return items


def matrix_differs(items):
    for p, s, ds in items:
        if s == 4:
            ds.Rows, ds.Columns = 48, 48
            ds.PixelData = F.frame_pixels(p, s)[:48, :48].copy().tobytes()
    return items


def spacing_differs(items):
    for p, s, ds in items:
        if s == 1:
            ds.PixelSpacing = [1.4, 1.4]
    return items


def missing_slice(items):
    return [(p, s, ds) for p, s, ds in items if s != 3]


def irregular_gap(items):
    for p, s, ds in items:
        if s == 5:
            ds.ImagePositionPatient = [float(v) for v in F.position(5) + 3.0 * F.normal()]
    return items


def phase_count_differs(items):
    return [(p, s, ds) for p, s, ds in items if not (s == 2 and p == 7)]


def phase_missing_everywhere(items):
    return [(p, s, ds) for p, s, ds in items if p != 5]  # CardiacNumberOfImages still says 8


def no_trigger_time(items):
    for _, _, ds in items:
        del ds.TriggerTime
    return items


def second_stack(items):
    """A second, parallel short-axis cine at the same positions, other series and pixel spacing."""
    series, extra = generate_uid(), []
    for p, s, ds in items:
        twin = _new_uid(ds)
        twin.SeriesInstanceUID, twin.SeriesNumber, twin.SeriesDescription = series, 30, "cine_sax_hires"
        twin.PixelSpacing = [1.0, 1.0]
        extra.append((p, s, twin))
    return items + extra


def repeated_breath_hold(items):
    """Slice 2 acquired again later as its own series: the repeat (different pixels) must win."""
    series, extra = generate_uid(), []
    for p, s, ds in items:
        if s == 2:
            again = _new_uid(ds)
            again.SeriesInstanceUID, again.SeriesNumber = series, 11
            again.AcquisitionTime = "111111.000000"
            again.PixelData = (F.frame_pixels(p, s) + 1).astype(np.uint16).tobytes()
            extra.append((p, s, again))
    return items + extra


def duplicate_image(items):
    p, s, ds = items[5]
    return items + [(p, s, _new_uid(ds))]


def shifted_in_plane(items):
    for p, s, ds in items:
        if s == 3:
            ds.ImagePositionPatient = [float(v) for v in F.position(3) + 5.0 * F.ROW]
    return items


def localizers_and_other_files(items):
    """Scouts, a derived map on the same planes, a 4-chamber cine and a SEG-like non-MR object."""
    extra = []
    scout = _new_uid(items[0][2])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    extra.append((0, 0, scout))
    derived = _new_uid(items[1][2])
    derived.ImageType = ["DERIVED", "SECONDARY", "M"]
    extra.append((0, 0, derived))
    four_chamber = generate_uid()
    for p in range(F.N_PHASES):
        lax = _new_uid(items[p][2])
        lax.SeriesInstanceUID, lax.SeriesNumber, lax.SeriesDescription = four_chamber, 5, "cine_4ch"
        lax.ImageOrientationPatient = [*map(float, F.ROW), *map(float, F.normal())]  # 90 degrees off
        extra.append((p, 0, lax))
    sc = _new_uid(items[2][2])
    sc.SOPClassUID = sc.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    extra.append((0, 0, sc))
    return items + extra


def undecodable_syntax(items):
    from pydicom.encaps import encapsulate

    ds = items[0][2]
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder installed
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return items


def no_trigger_time_instance_order(items):
    """No trigger time, instances numbered in time order per slice (as scanners do): usable with --phases."""
    for p, s, ds in no_trigger_time(items):
        ds.InstanceNumber = s * F.N_PHASES + p + 1
    return items


@dataclass
class Case:
    mutate: Callable
    error: str | None  # regex the CohortError must match; None: a correct stack is expected
    expected: Callable[[np.ndarray], np.ndarray] | None = None  # expected pixels from the clean ones
    warning: str | None = None
    names_a_file: bool = True
    read_kwargs: dict | None = None


def _repeat_pixels(clean: np.ndarray) -> np.ndarray:
    out = clean.copy()
    out[:, 2] += F.RESCALE[0]  # stored + 1 after rescale
    return out


CASES = {
    "orientation differs in one slice": Case(tilted_slice, r"differ in orientation"),
    "matrix differs in one slice": Case(matrix_differs, r"differ in matrix 48x48"),
    "pixel spacing differs in one slice": Case(spacing_differs, r"differ in pixel spacing"),
    "missing slice": Case(missing_slice, r"missing slice \(2\.0 x the usual gap\)"),
    "irregular gap": Case(irregular_gap, r"irregular gap"),
    "phase count differs per slice": Case(phase_count_differs, r"holds 7 phases, the other slices 8"),
    "a phase missing in every slice": Case(phase_missing_everywhere, r"CardiacNumberOfImages says 8"),
    "no trigger time": Case(no_trigger_time, r"have no TriggerTime"),
    "no trigger time, phases given": Case(no_trigger_time_instance_order, None,
                                          read_kwargs={"require_trigger": False}),
    "two short-axis stacks": Case(second_stack, r"2 short-axis cine stacks .*series 10.*series 30.*--series",
                                  names_a_file=False),
    "two stacks, --series chosen": Case(second_stack, None, read_kwargs={"series": [30]}),
    "repeated breath-hold": Case(repeated_breath_hold, None, expected=_repeat_pixels,
                                 warning=r"acquired 2 times; kept the latest \(series 11"),
    "duplicate image": Case(duplicate_image, r"2 images at slice position .* share trigger time"),
    "slice shifted in-plane": Case(shifted_in_plane, r"shifted 5\.00 mm in-plane"),
    "localizer, derived, long-axis, non-MR mixed in": Case(localizers_and_other_files, None,
                                                           warning=r"localizer image"),
    "undecodable transfer syntax": Case(undecodable_syntax, r"transfer syntax .*cannot be decoded"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_folder(name, tmp_path):
    case = CASES[name]
    items = case.mutate(F.build_datasets())
    exam = F.write_classic(tmp_path / PID, items)
    (tmp_path / PID / "notes.txt").write_text("not a DICOM file")
    kwargs = case.read_kwargs or {}
    if case.error is not None:
        with pytest.raises(CohortError, match=case.error) as info:
            read_cine(exam.folder, PID, **kwargs)
        err = info.value
        assert err.patient_id == PID
        if case.names_a_file:
            assert err.path and (err.path.endswith(".dcm") or ".dcm frame" in err.path), str(err)
            assert str(tmp_path) not in err.path  # relative names only
        assert F.PATIENT_ID not in str(err) and "Doe" not in str(err)
        return
    cine = read_cine(exam.folder, PID, **kwargs)
    clean = F.Exam(exam.folder, F.N_SLICES, F.N_PHASES, F.ES_PHASE, []).expected()
    if name == "two stacks, --series chosen":
        assert cine.series == [(30, "cine_sax_hires")] and cine.spacing[:2] == (1.0, 1.0)
    expected = case.expected(clean) if case.expected else clean
    np.testing.assert_array_equal(cine.pixels, expected)
    assert any("notes.txt" in w and "not a DICOM file" in w for w in cine.warnings)
    if case.warning:
        assert any(__import__("re").search(case.warning, w) for w in cine.warnings), cine.warnings
    if name.startswith("localizer"):
        text = " ".join(cine.warnings)
        assert "derived image" in text and "another view" in text and "not an MR image" in text
        assert sum(text.count(p.name) for p in Path(exam.folder).iterdir()) >= 1 + 1 + F.N_PHASES + 1


def test_empty_and_non_dicom_folders_are_named(tmp_path):
    (tmp_path / PID).mkdir()
    (tmp_path / PID / "readme.txt").write_text("hello")
    with pytest.raises(CohortError, match="holds no MR image"):
        read_cine(tmp_path / PID, PID)
    with pytest.raises(CohortError, match="does not exist"):
        read_cine(tmp_path / "nope", PID)


def test_series_not_in_folder_lists_the_available(tmp_path):
    exam = F.write_classic(tmp_path / PID)
    with pytest.raises(CohortError, match="no MR image of series 99; the folder holds series 10"):
        read_cine(exam.folder, PID, series=[99])
