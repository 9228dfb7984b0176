"""`cinescar import-dicom`: folders of DICOM exams -> a cohort in the contract, phase_selection.csv, masks
only from a segmenter; a bad exam stops the import with every problem named and nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import dicom_fixtures as F
from cinescar.cli import main as cli_main
from cinescar.cohort.contract import MANIFEST_COLUMNS, geometry_mismatch, read_manifest, read_volume
from cinescar.dicom.importer import PHASE_CSV, ImportFailed, import_dicom_api


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom_root")
    F.write_classic(root / "P001", nested=True, series_per_slice=True)
    F.write_enhanced(root / "P002", n_slices=4, n_phases=6, es=4)
    (root / "labels.csv").write_text("patient_id,lge,center,age\nP001,1,Rome,51\nP002,0,Rome,63\n")
    return root


def test_import_writes_the_contract(root, tmp_path):
    out = tmp_path / "cohort"
    summary = import_dicom_api(root, out, labels=root / "labels.csv", lv_volume_ml=F.toy_lv_volume_ml)
    assert summary["imported"] == 2 and summary["masks"] is False
    manifest = read_manifest(out)
    assert list(manifest.columns[:len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert manifest["lge"].tolist() == [1, 0] and manifest["center"].tolist() == ["Rome", "Rome"]
    assert manifest["vendor"].tolist() == ["SynthVendor"] * 2
    assert manifest["ed_mask"].isna().all() and manifest["es_mask"].isna().all()
    es_phases = {"P001": F.ES_PHASE, "P002": 4}
    for pid, n_slices in (("P001", F.N_SLICES), ("P002", 4)):
        row = manifest.set_index("patient_id").loc[pid]
        ed = read_volume(out / row["ed_image"], pid)
        es = read_volume(out / row["es_image"], pid)
        assert ed.GetSize() == (F.SIZE, F.SIZE, n_slices)
        assert geometry_mismatch(ed, es) is None
        np.testing.assert_allclose(ed.GetOrigin(), F.ORIGIN, atol=1e-4)
        expected = F.frame_pixels(es_phases[pid], 0, 8 if pid == "P001" else 6, es_phases[pid])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(es)[0], expected * F.RESCALE[0] + F.RESCALE[1])
    phases = pd.read_csv(out / PHASE_CSV)
    assert len(phases) == 8 + 6
    chosen = phases[phases["is_es"] == 1].set_index("patient_id")["phase"].to_dict()
    assert chosen == es_phases
    assert set(phases["es_method"]) == {"smallest LV cavity volume"}


def test_segmenter_writes_masks_on_the_image_grid(root, tmp_path):
    out = tmp_path / "cohort"
    import_dicom_api(root, out, phases="ed=0,es=2", segmenter=F.toy_segmenter)
    manifest = read_manifest(out)
    for _, row in manifest.iterrows():
        image = read_volume(out / row["ed_image"], row["patient_id"])
        mask = read_volume(out / row["ed_mask"], row["patient_id"])
        assert geometry_mismatch(image, mask) is None
        assert set(np.unique(sitk.GetArrayFromImage(mask))) == {0, 1}
    assert set(pd.read_csv(out / PHASE_CSV)["es_method"]) == {"given"}


def test_a_bad_exam_names_every_problem_and_writes_nothing(root, tmp_path):
    bad_root = tmp_path / "root"
    F.write_classic(bad_root / "P001")
    F.write_classic(bad_root / "P009", [(p, s, ds) for p, s, ds in F.build_datasets() if s != 3])
    with pytest.raises(ImportFailed, match=r"patient P009, file IM\d+\.dcm: .*missing slice") as info:
        import_dicom_api(bad_root, tmp_path / "cohort", phases="ed=0,es=3")
    assert len(info.value.problems) == 1
    assert not (tmp_path / "cohort" / "manifest.csv").exists()


def test_cli_import_dicom(root, tmp_path, capsys):
    out = tmp_path / "cohort"
    assert cli_main(["import-dicom", str(root), "--out", str(out), "--phases", "ed=0,es=3",
                     "--labels", str(root / "labels.csv")]) == 0
    text = capsys.readouterr().out
    assert "Imported 2 DICOM exam(s)" in text and "ES 3 (given)" in text
    assert cli_main(["import-dicom", str(root), "--out", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err
    assert "ES needs an LV volume" in err and "patient P001" in err and "Traceback" not in err
