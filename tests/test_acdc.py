"""ACDC importer: a tiny ACDC-format fixture written here, plus a check on real ACDC patients when present."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from cinescar.cohort import acdc
from cinescar.cohort.acdc import (
    DEFAULT_LABEL_MAP, MANIFEST_COLUMNS, SUMMARY, import_acdc, max_wall_thickness, parse_label_map,
)
from cinescar.errors import CohortError, ConfigError

REPO = Path(__file__).resolve().parents[1]
ACDC_TRAINING = REPO.parent / "shared" / "data" / "acdc" / "training"

SPACING = (1.5, 1.25, 8.0)  # anisotropic in-plane on purpose
ORIGIN = (-20.0, 10.0, 3.5)
DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
SIZE_ROWS, SIZE_COLS, N_SLICES = 30, 34, 5


def _labels(cavity_radius: float, wall: float, n_slices: int = N_SLICES) -> np.ndarray:
    """ACDC-like label stack (slices, rows, cols): LV cavity 3, myocardium 2, an RV blob 1, background 0."""
    yy, xx = np.mgrid[:SIZE_ROWS, :SIZE_COLS]
    r = np.hypot(yy - 15, xx - 18)
    out = np.zeros((n_slices, SIZE_ROWS, SIZE_COLS), np.uint8)
    for z in range(n_slices):
        sl = out[z]
        sl[(xx < 6) & (abs(yy - 15) < 5)] = 1
        sl[(r >= cavity_radius) & (r < cavity_radius + wall)] = 2
        sl[r < cavity_radius] = 3
    return out


def _write(arr: np.ndarray, path: Path, spacing=SPACING, origin=ORIGIN, direction=DIRECTION) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path))


def write_acdc_patient(root: Path, pid: str, group: str, ed: int = 1, es: int = 9, cavity_ed: float = 8.0,
                       cavity_es: float = 5.0, wall: float = 3.0, height: float = 170.0, weight: float = 70.0,
                       seed: int = 0) -> Path:
    folder = root / pid
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: {height}\n"
                                     f"NbFrame: 20\nWeight: {weight}\n")
    rng = np.random.default_rng(seed)
    for frame, cavity in ((ed, cavity_ed), (es, cavity_es)):
        labels = _labels(cavity, wall)
        image = (100 + 50 * labels + 10 * rng.standard_normal(labels.shape)).astype(np.int16)
        _write(image, folder / f"{pid}_frame{frame:02d}.nii.gz")
        _write(labels, folder / f"{pid}_frame{frame:02d}_gt.nii.gz")
    return folder


@pytest.fixture
def acdc_dir(tmp_path: Path) -> Path:
    """Four ACDC-format patients: MINF (small EF), NOR, RV, and a DCM that the default map leaves out."""
    root = tmp_path / "acdc"
    write_acdc_patient(root, "patient001", "MINF", cavity_ed=9.0, cavity_es=8.0, seed=1)
    write_acdc_patient(root, "patient002", "NOR", ed=2, es=11, seed=2)
    write_acdc_patient(root, "patient003", "RV", seed=3, height=160.0, weight=80.0)
    write_acdc_patient(root, "patient004", "DCM", seed=4)
    return root


def _manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype={"patient_id": str})


# --------------------------------------------------------------------------------------------- import
def test_import_writes_contract_and_counts_left_out(acdc_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    summary = import_acdc(acdc_dir, out)
    m = _manifest(out)
    assert list(m.columns) == MANIFEST_COLUMNS
    assert list(m.patient_id) == ["patient001", "patient002", "patient003"]
    assert dict(zip(m.patient_id, m.lge)) == {"patient001": 1, "patient002": 0, "patient003": 0}
    assert set(m.center) == {"Dijon"} and set(m.vendor) == {"Siemens"} and set(m.cohort) == {"internal"}
    for col in ("age", "sex", "CO", "scar_slices"):
        assert m[col].isna().all(), col

    # The DCM patient is left out, counted, with a reason -- in the return value and on disk.
    on_disk = json.loads((out / SUMMARY).read_text())["imports"]
    assert on_disk == [json.loads(json.dumps(summary))]
    assert summary["patients_per_group"] == {"DCM": 1, "MINF": 1, "NOR": 1, "RV": 1}
    assert summary["imported"]["total"] == 3 and summary["imported"]["by_label"] == {"0": 2, "1": 1}
    assert summary["left_out"]["total"] == 1
    assert summary["left_out"]["patients"] == [
        {"patient_id": "patient004", "group": "DCM", "reason": "group DCM not in the label map"}]
    assert not (out / "images" / "patient004_ED.nii.gz").exists()


def test_images_and_masks_keep_source_voxels_and_geometry(acdc_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    import_acdc(acdc_dir, out)
    row = _manifest(out).set_index("patient_id").loc["patient002"]
    for phase, frame in (("ed", 2), ("es", 11)):
        src = sitk.ReadImage(str(acdc_dir / "patient002" / f"patient002_frame{frame:02d}.nii.gz"))
        gt = sitk.GetArrayFromImage(sitk.ReadImage(str(acdc_dir / "patient002" / f"patient002_frame{frame:02d}_gt.nii.gz")))
        img = sitk.ReadImage(str(out / row[f"{phase}_image"]))
        msk = sitk.ReadImage(str(out / row[f"{phase}_mask"]))
        assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(src))
        assert msk.GetPixelID() == sitk.sitkUInt8
        assert np.array_equal(sitk.GetArrayFromImage(msk), (gt == 2).astype(np.uint8))
        for written in (img, msk):
            assert written.GetSize() == src.GetSize()
            np.testing.assert_allclose(written.GetSpacing(), SPACING, rtol=1e-6)
            np.testing.assert_allclose(written.GetOrigin(), ORIGIN, atol=1e-5)
            np.testing.assert_allclose(written.GetDirection(), DIRECTION, atol=1e-6)


def test_clinical_columns_from_labels_and_info(acdc_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    import_acdc(acdc_dir, out)
    row = _manifest(out).set_index("patient_id").loc["patient003"]
    voxel_ml = np.prod(SPACING) / 1000
    ed, es = _labels(8.0, 3.0), _labels(5.0, 3.0)
    edv, esv = (ed == 3).sum() * voxel_ml, (es == 3).sum() * voxel_ml
    assert row.LVEDV == pytest.approx(edv, abs=0.006)
    assert row.LVESV == pytest.approx(esv, abs=0.006)
    assert row.SV == pytest.approx(edv - esv, abs=0.006)
    assert row.LVEF == pytest.approx(100 * (edv - esv) / edv, abs=0.006)
    assert row.LVM == pytest.approx((ed == 2).sum() * voxel_ml * 1.05, abs=0.006)
    assert (row.height, row.weight) == (160.0, 80.0)
    assert row.BMI == pytest.approx(80 / 1.6**2, abs=0.006)
    # Ring 3 px across, pixels 1.5 x 1.25 mm: the wall is between 3 x 1.25 and 3 x 1.5 mm thick (+ raster).
    assert 3.5 <= row.MWT <= 5.5


# ------------------------------------------------------------------------------------------------ MWT
def test_mwt_of_an_annulus_matches_its_thickness_and_ignores_a_solid_cap() -> None:
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 48, xx - 48)
    ring = (r >= 20) & (r < 32)  # 12 px wall
    cap = r < 25  # a solid apical cap (no cavity): would be ~50 px "thick" by 2 x inner distance
    myo = np.stack([ring, cap])
    for spacing in (1.0, 0.7):
        mwt = max_wall_thickness(myo, (spacing, spacing), cavity=np.stack([r < 20, np.zeros_like(cap)]))
        assert mwt == pytest.approx(12 * spacing, abs=spacing)
    # Without a cavity label the holes of the myocardium are the cavity; with no cavity at all, NaN.
    assert max_wall_thickness(myo, (1.0, 1.0)) == pytest.approx(12, abs=1)
    assert np.isnan(max_wall_thickness(cap[None], (1.0, 1.0)))


def test_mwt_finds_the_thick_segment() -> None:
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 48, xx - 48)
    wall = (r >= 20) & (r < 26)  # 6 px everywhere ...
    angle = np.degrees(np.arctan2(yy - 48, xx - 48))
    wall |= (r >= 20) & (r < 38) & (abs(angle) < 60)  # ... 18 px over a 120-degree septal-like segment
    assert max_wall_thickness(wall[None], (1.0, 1.0), cavity=(r < 20)[None]) == pytest.approx(18, abs=1)


# ------------------------------------------------------------------------------------------ label map
def test_label_map_parsing_and_validation() -> None:
    assert parse_label_map("MINF=1, NOR=0,RV=0") == DEFAULT_LABEL_MAP
    assert parse_label_map("MINF=1,HCM=1,NOR=0") == {"MINF": 1, "HCM": 1, "NOR": 0}
    for bad in ("MINF", "MINF=2,NOR=0", "MINF=1,NOR=1", "MINF=1,MINF=0,NOR=0", "MI NF=1,NOR=0", "MINF=x,NOR=0"):
        with pytest.raises(ConfigError):
            parse_label_map(bad)


def test_custom_label_map_imports_other_groups(acdc_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    summary = import_acdc(acdc_dir, out, label_map={"MINF": 1, "DCM": 1, "NOR": 0}, center="Elsewhere",
                          vendor="Philips", cohort="external")
    m = _manifest(out)
    assert dict(zip(m.patient_id, m.lge)) == {"patient001": 1, "patient002": 0, "patient004": 1}
    assert set(m.center) == {"Elsewhere"} and set(m.vendor) == {"Philips"} and set(m.cohort) == {"external"}
    assert summary["left_out"]["by_group"] == {"RV": 1}


# ---------------------------------------------------------------------------------------------- append
def test_append_adds_an_external_folder_and_refuses_duplicates(acdc_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    import_acdc(acdc_dir, out)
    with pytest.raises(CohortError, match="already holds a cohort"):
        import_acdc(acdc_dir, out)

    second = tmp_path / "acdc2"
    write_acdc_patient(second, "ext001", "MINF", seed=5)
    write_acdc_patient(second, "ext002", "NOR", seed=6)
    import_acdc(second, out, append=True, cohort="external", center="Other", vendor="GE")
    m = _manifest(out)
    assert list(m.patient_id) == ["patient001", "patient002", "patient003", "ext001", "ext002"]
    assert list(m.cohort) == ["internal"] * 3 + ["external"] * 2
    assert list(m.center) == ["Dijon"] * 3 + ["Other"] * 2
    imports = json.loads((out / SUMMARY).read_text())["imports"]
    assert [i["cohort"] for i in imports] == ["internal", "external"] and imports[1]["appended"]

    before = (out / "manifest.csv").read_bytes()
    with pytest.raises(CohortError, match="already in the cohort") as err:
        import_acdc(acdc_dir, out, append=True, cohort="external")
    assert "patient001" in str(err.value)
    assert (out / "manifest.csv").read_bytes() == before


def test_interrupted_import_leaves_no_manifest(acdc_dir: Path, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = acdc.convert_patient

    def flaky(folder, patient_id, info, out_dir):
        calls.append(patient_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(folder, patient_id, info, out_dir)

    monkeypatch.setattr(acdc, "convert_patient", flaky)
    out = tmp_path / "cohort"
    with pytest.raises(KeyboardInterrupt):
        import_acdc(acdc_dir, out)
    assert (out / "images" / "patient001_ED.nii.gz").exists()
    assert not (out / "manifest.csv").exists() and not (out / SUMMARY).exists()
    monkeypatch.undo()
    import_acdc(acdc_dir, out)  # a rerun completes the import
    assert len(_manifest(out)) == 3


# ---------------------------------------------------------------------------------------------- errors
def _break(folder: Path, how: str) -> str:
    """Damage patient folder `folder` one way; return the file name the error must name."""
    pid = folder.name
    if how == "no_info":
        (folder / "Info.cfg").unlink()
        return "Info.cfg"
    if how in ("no_group", "bad_ed", "same_frames"):
        text = (folder / "Info.cfg").read_text()
        text = {"no_group": text.replace("Group: MINF\n", ""), "bad_ed": text.replace("ED: 1\n", "ED: one\n"),
                "same_frames": text.replace("ES: 9\n", "ES: 1\n")}[how]
        (folder / "Info.cfg").write_text(text)
        return "Info.cfg"
    if how == "no_frame":
        (folder / f"{pid}_frame09.nii.gz").unlink()
        return f"{pid}_frame09.nii.gz"
    if how == "no_gt":
        (folder / f"{pid}_frame01_gt.nii.gz").unlink()
        return f"{pid}_frame01_gt.nii.gz"
    if how == "gt_geometry":
        _write(_labels(8.0, 3.0), folder / f"{pid}_frame01_gt.nii.gz", spacing=(1.5, 1.5, 8.0))
        return f"{pid}_frame01_gt.nii.gz"
    if how == "no_myocardium":
        labels = _labels(8.0, 3.0)
        labels[labels == 2] = 0
        _write(labels, folder / f"{pid}_frame01_gt.nii.gz")
        return f"{pid}_frame01_gt.nii.gz"
    if how == "not_an_image":
        (folder / f"{pid}_frame09.nii.gz").write_bytes(b"not a nifti file")
        return f"{pid}_frame09.nii.gz"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["no_info", "no_group", "bad_ed", "same_frames", "no_frame", "no_gt",
                                 "gt_geometry", "no_myocardium", "not_an_image"])
def test_bad_input_is_a_cohort_error_naming_patient_and_file(acdc_dir: Path, tmp_path: Path, how: str) -> None:
    filename = _break(acdc_dir / "patient001", how)
    out = tmp_path / "cohort"
    with pytest.raises(CohortError) as err:
        import_acdc(acdc_dir, out)
    assert err.value.patient_id == "patient001"
    assert "patient001" in str(err.value) and filename in str(err.value)
    assert not (out / "manifest.csv").exists()


def test_folder_without_patients_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ACDC" / "training").mkdir(parents=True)
    with pytest.raises(CohortError, match="training"):
        import_acdc(tmp_path / "ACDC", tmp_path / "out")  # points at the parent of training/
    with pytest.raises(CohortError, match="does not exist"):
        import_acdc(tmp_path / "nowhere", tmp_path / "out")


def test_quiet_itk_restores_the_global_warning_setting() -> None:
    before = sitk.ProcessObject_GetGlobalWarningDisplay()
    with acdc.quiet_itk():
        assert not sitk.ProcessObject_GetGlobalWarningDisplay()
    assert sitk.ProcessObject_GetGlobalWarningDisplay() == before


# ------------------------------------------------------------------------------------------ CLI, config
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cinescar import-acdc")
    acdc.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_main_prints_the_summary(acdc_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cohort"
    args = _parse([str(acdc_dir), "--out", str(out), "--label-map", "MINF=1,NOR=0", "--center", "C1",
                   "--vendor", "V1", "--cohort", "external"])
    assert acdc.main(args) == 0
    printed = capsys.readouterr().out
    assert "Imported 2 patient(s)" in printed
    assert "DCM" in printed and "RV" in printed and "left out" in printed
    m = _manifest(out)
    assert list(m.patient_id) == ["patient001", "patient002"]
    assert set(m.center) == {"C1"} and set(m.vendor) == {"V1"} and set(m.cohort) == {"external"}


def test_cli_takes_defaults_from_the_config_section_and_options_override_them(
        acdc_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import cinescar.config

    section = {"label_map": {"MINF": 1, "DCM": 1, "NOR": 0}, "center": "CfgCentre", "vendor": "CfgVendor"}
    seen = []
    monkeypatch.setattr(cinescar.config, "load_config", lambda path: seen.append(path) or {"acdc": section})
    out = tmp_path / "cohort"
    assert acdc.main(_parse([str(acdc_dir), "--out", str(out), "--config", "my.yaml", "--vendor", "V2"])) == 0
    assert seen == [Path("my.yaml")]
    m = _manifest(out)
    assert dict(zip(m.patient_id, m.lge)) == {"patient001": 1, "patient002": 0, "patient004": 1}
    assert set(m.center) == {"CfgCentre"} and set(m.vendor) == {"V2"}


def test_config_section_matches_its_schema_and_the_code_defaults() -> None:
    from cinescar.config import load_config

    # the shipped config resolved (config/config.yaml holds only what differs from the schema's defaults)
    section = {"acdc": load_config()["acdc"]}
    schema = {"acdc": yaml.safe_load((REPO / "config" / "schema.yaml").read_text(encoding="utf-8"))["properties"]["acdc"]}
    jsonschema.validate(section, {"type": "object", "properties": schema, "additionalProperties": False})
    props = schema["acdc"]["properties"]
    assert section["acdc"]["label_map"] == props["label_map"]["default"] == DEFAULT_LABEL_MAP
    assert section["acdc"]["center"] == props["center"]["default"] == acdc.DEFAULT_CENTER
    assert section["acdc"]["vendor"] == props["vendor"]["default"] == acdc.DEFAULT_VENDOR
    assert all("description" in p and "default" in p for p in props.values())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"acdc": {"label_map": {"MINF": 2, "NOR": 0}}},
                            {"type": "object", "properties": schema})


# ------------------------------------------------------------------------------------- real ACDC data
REAL_MINF = ["patient041", "patient042", "patient043"]
REAL_NOR = ["patient061", "patient062", "patient063"]


@pytest.mark.acdc
@pytest.mark.skipif(not ACDC_TRAINING.is_dir(), reason=f"ACDC training set not at {ACDC_TRAINING}")
def test_real_acdc_patients_volumes_and_group_definitions(tmp_path: Path, capfd) -> None:
    out = tmp_path / "acdc_cohort"
    summary = import_acdc(ACDC_TRAINING, out, patients=REAL_MINF + REAL_NOR)
    assert "sform" not in capfd.readouterr().err  # ITK's header warnings are silenced while importing
    assert summary["patients_per_group"] == {"MINF": 3, "NOR": 3}
    m = _manifest(out).set_index("patient_id")
    for pid in REAL_MINF + REAL_NOR:
        info = dict(line.split(":", 1) for line in (ACDC_TRAINING / pid / "Info.cfg").read_text().splitlines()
                    if ":" in line)
        group = info["Group"].strip()
        volumes = {}
        for phase in ("ED", "ES"):
            frame = int(info[phase])
            gt = sitk.ReadImage(str(ACDC_TRAINING / pid / f"{pid}_frame{frame:02d}_gt.nii.gz"))
            labels = sitk.GetArrayFromImage(gt)
            voxel_ml = np.prod(gt.GetSpacing()) / 1000.0
            volumes[phase] = (labels == 3).sum() * voxel_ml
            if phase == "ED":
                lvm = (labels == 2).sum() * voxel_ml * 1.05
            # the written mask is label 2 of the source, on the source image's geometry
            src = sitk.ReadImage(str(ACDC_TRAINING / pid / f"{pid}_frame{frame:02d}.nii.gz"))
            msk = sitk.ReadImage(str(out / m.loc[pid, f"{phase.lower()}_mask"]))
            img = sitk.ReadImage(str(out / m.loc[pid, f"{phase.lower()}_image"]))
            assert np.array_equal(sitk.GetArrayFromImage(msk), (labels == 2).astype(np.uint8))
            assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(src))
            np.testing.assert_allclose(msk.GetSpacing(), src.GetSpacing(), rtol=1e-6)
            np.testing.assert_allclose(img.GetOrigin(), src.GetOrigin(), atol=1e-4)
        ef = 100 * (volumes["ED"] - volumes["ES"]) / volumes["ED"]
        row = m.loc[pid]
        assert row.LVEDV == pytest.approx(volumes["ED"], abs=0.006)
        assert row.LVESV == pytest.approx(volumes["ES"], abs=0.006)
        assert row.LVEF == pytest.approx(ef, abs=0.006)
        assert row.LVM == pytest.approx(lvm, abs=0.006)
        assert row.height == pytest.approx(float(info["Height"])) and row.weight == pytest.approx(float(info["Weight"]))
        # ACDC group definitions: MINF has LVEF < 40 %, NOR a normal LVEF (> 50 %); the scar proxy labels.
        if group == "MINF":
            assert row.LVEF < 40 and row.lge == 1
        else:
            assert group == "NOR" and row.LVEF > 50 and row.lge == 0
        assert 5 < row.MWT < 20  # mm: plausible non-hypertrophic walls


def test_masks_only_import_writes_images_and_masks_without_a_label_and_refuses_study_patients(
        acdc_dir: Path, tmp_path: Path) -> None:
    """DCM (left out of the scar proxy) becomes a masks-only cohort the segmenter can train on; a study patient
    never does."""
    from cinescar.cohort.contract import read_manifest
    from cinescar.segmentation.data import read_stack_fields

    out = tmp_path / "masks_only"
    summary = acdc.import_acdc_masks_only(acdc_dir, out, ["DCM"])
    table = read_manifest(out)
    assert summary["patients"] == 1 and table["patient_id"].tolist() == ["patient004"]
    assert "lge" not in table and table.loc[0, "group"] == "DCM"
    stacks = read_stack_fields(out, table.iloc[0], 64, 1.0, (0.5, 99.5))
    assert [s.phase for s in stacks] == ["ED", "ES"] and all(s.labels is not None and (s.labels > 0).any()
                                                              for s in stacks)
    with pytest.raises(CohortError, match="study's cohort"):
        acdc.import_acdc_masks_only(acdc_dir, tmp_path / "again", ["DCM", "NOR"], exclude=["patient002"])
    with pytest.raises(ConfigError, match="not ACDC groups"):
        acdc.import_acdc_masks_only(acdc_dir, tmp_path / "bad", ["XYZ"])
