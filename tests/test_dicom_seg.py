"""DICOM out: the SEG reads back with highdicom to the same mask and source instances; the Secondary Capture
is marked research-only and filed under the source patient and study; nothing identifying is logged."""

from __future__ import annotations

import logging

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import dicom_fixtures as F
from cinescar import __version__
from cinescar.dicom import read_cine
from cinescar.dicom.seg import RESEARCH_ONLY, write_secondary_capture, write_seg
from cinescar.errors import CinescarError


@pytest.fixture(scope="module")
def cines(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    return {"classic": read_cine(F.write_classic(root / "classic").folder, "P001"),
            "enhanced": read_cine(F.write_enhanced(root / "enhanced", n_slices=4, n_phases=5, es=2).folder, "P001")}


@pytest.mark.parametrize("layout", ["classic", "enhanced"])
def test_seg_reads_back_to_the_same_mask_and_sources(cines, layout, tmp_path, caplog):
    cine = cines[layout]
    phase = 2
    labels = F.toy_segmenter(cine.phase_image(phase))
    with caplog.at_level(logging.INFO):
        path = write_seg(cine, phase, labels, tmp_path / "seg.dcm")
    assert F.PATIENT_ID not in caplog.text and "Doe" not in caplog.text and "seg.dcm" in caplog.text
    seg = hd.seg.segread(path)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Myocardium", "LV cavity"]
    for s in seg.SegmentSequence:
        assert s.SegmentAlgorithmType == "AUTOMATIC" and s.SegmentAlgorithmName == "cinescar"
        assert s.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == __version__
    source = pydicom.dcmread(cine.folder / cine.sources[phase][0].rel, stop_before_pixels=True)
    assert (seg.PatientID, seg.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)

    expected = sitk.GetArrayFromImage(labels)
    volume = seg.get_volume(combine_segments=True)
    # highdicom orders the volume by its own rule: map each SEG frame to our slice through its position
    normal = np.array(cine.direction).reshape(3, 3)[:, 2]
    frames = seg.pixel_array if seg.pixel_array.ndim == 3 else seg.pixel_array[None]
    for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ipp = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        s = int(np.argmin(np.abs(cine.slice_positions_mm - ipp @ normal)))
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_array_equal(frames[i].astype(bool), expected[s] == number)
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == cine.sources[phase][s].sop_instance_uid
        assert ref.get("ReferencedFrameNumber") == cine.sources[phase][s].frame_number
    assert sorted(np.unique(volume.array)) == [0, 1, 2]
    assert int((volume.array == 1).sum()) == int((expected == 1).sum())
    referenced = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {r.sop_instance_uid for r in cine.sources[phase]}


def test_seg_refuses_a_label_image_off_the_source_grid(cines, tmp_path):
    cine = cines["classic"]
    labels = F.toy_segmenter(cine.phase_image(0))
    labels.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(CinescarError, match="not on the source grid"):
        write_seg(cine, 0, labels, tmp_path / "seg.dcm")
    with pytest.raises(CinescarError, match="shape"):
        write_seg(cine, 0, np.zeros((2, 8, 8), np.uint8), tmp_path / "seg.dcm")


def test_secondary_capture_is_research_only_and_in_the_source_study(cines, tmp_path, caplog):
    cine = cines["classic"]
    rgb = np.full((120, 200, 3), 60, np.uint8)
    with caplog.at_level(logging.INFO):
        path = write_secondary_capture(cine, rgb, tmp_path / "sc.dcm", description="scar probability 0.31")
    assert F.PATIENT_ID not in caplog.text and "Doe" not in caplog.text
    ds = pydicom.dcmread(path)
    source = pydicom.dcmread(cine.folder / cine.sources[0][0].rel, stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert (ds.PatientID, ds.PatientName, ds.StudyInstanceUID) == (source.PatientID, source.PatientName,
                                                                   source.StudyInstanceUID)
    assert RESEARCH_ONLY in ds.SeriesDescription and RESEARCH_ONLY in ds.ImageComments
    assert ds.BurnedInAnnotation == "YES"
    pixels = ds.pixel_array
    assert pixels.shape == rgb.shape
    assert np.array_equal(pixels[:80], rgb[:80])  # the picture is kept
    assert (pixels[-12:] != 60).any()  # the banner is burned in
    with pytest.raises(CinescarError, match="RGB uint8"):
        write_secondary_capture(cine, rgb.astype(np.float32), tmp_path / "bad.dcm")
