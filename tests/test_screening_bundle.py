"""The model bundle and `cinescar screen`, on a tiny study trained by the stages' own functions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cinescar.errors import CinescarError, CohortError
from cinescar.cohort.contract import geometry_mismatch
from screening_fixtures import build_segmenter_bundle, train_tiny_study, working_dir

from cinescar.models import IMAGE_MODELS as MODELS  # the models a bundle ships


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    return train_tiny_study(tmp_path_factory.mktemp("screening") / "study")


def _build(study, out: Path, final_models: Path | None = None) -> Path:
    from cinescar.screening.publish import build_bundle

    inputs = study.workflow_inputs()
    if final_models is not None:
        inputs["final_models"] = final_models
    with working_dir(study.root):
        build_bundle(out, cfg=study.cfg, **inputs)
    return out


@pytest.fixture(scope="session")
def bundle_dir(study):
    return _build(study, study.root / "results" / "bundle")


@pytest.fixture(scope="session")
def bundle(bundle_dir):
    from cinescar.screening.bundle import load_bundle

    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def other_fold_bundle(study):
    """One-fold final models (the `best_on_test` rule at the per-fold cut-off), DL-Radiomics from another fold than
    DL: the bundle then carries two CNNs (the fused model reads its own fold's DL features)."""
    final = json.loads(study.path("results/evaluation/final_models.json").read_text())
    metrics = pd.read_csv(study.path("results/evaluation/metrics.csv"))
    for model, fold in (("radiomics", 0), ("dl", 0), ("fusion", 1)):
        row = metrics[(metrics.model == model) & (metrics.fold == fold) & (metrics.cohort == "val")
                      & (metrics.operating_point == "validation")].iloc[0]  # fmt: skip
        final[model].update(fold=fold, folds=[fold], cutoff=float(row["cutoff"]), operating_point="validation",
                            rule="best_on_test", optimistic=True)
    patched = study.root / "final_models_other_fold.json"
    patched.write_text(json.dumps(final))
    return _build(study, study.root / "bundle_other_fold", patched)


def _splits(study) -> dict:
    return json.loads(study.path("results/splits/splits.json").read_text())


def _exam(study, pid: str):
    from cinescar.screening.screen import exam_from_manifest

    return exam_from_manifest(study.cohort / "manifest.csv", pid)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("which", ["final", "other_fold"])
def test_screening_reproduces_the_workflow_predictions(study, bundle_dir, other_fold_bundle, which):
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import screen_exam

    b = load_bundle(bundle_dir if which == "final" else other_fold_bundle)
    if which == "other_fold":
        assert b.folds("fusion") != b.folds("dl") and len(b.cnns) == 2
    else:  # the default final model: every fold model, patient probabilities averaged
        assert all(b.folds(m) == [0, 1] and b.models[m]["fold"] == -1 for m in MODELS)
    patients = pd.read_csv(study.path("results/evaluation/patients.csv"))
    splits = _splits(study)
    for pid in (splits["test"][0], splits["external"][0], splits["folds"][0]["train"][0]):
        result = screen_exam(b, _exam(study, pid))
        mine = pd.DataFrame(result["images"]).set_index("image_id")
        for model in MODELS:
            out = result["models"][model]
            pred = pd.read_parquet(study.path(f"results/{model}/predictions.parquet"))
            per_image = []
            for fold in b.folds(model):  # each fold model gives the workflow's probabilities for this patient
                pf = pred[(pred["fold"] == fold) & (pred["patient_id"] == pid)].set_index("image_id")["prob"]
                if pf.empty:
                    continue  # a training patient of this fold has no workflow prediction to compare with
                assert sorted(pf.index) == sorted(mine.index), (model, pid)
                assert out["fold_probabilities"][str(fold)] == pytest.approx(pf.max(), abs=1e-6)
                row = patients[(patients.model == model) & (patients.fold == fold) & (patients.patient_id == pid)]
                assert out["fold_probabilities"][str(fold)] == pytest.approx(float(row["prob"].iloc[0]), abs=1e-6)
                per_image.append(pf)
            if len(per_image) == len(b.folds(model)):  # predicted by every fold model: the mean is checkable
                np.testing.assert_allclose(mine.loc[per_image[0].index, model],
                                           np.mean([p.loc[per_image[0].index] for p in per_image], axis=0), atol=1e-6)
                assert out["probability"] == pytest.approx(np.mean([p.max() for p in per_image]), abs=1e-6)
                final = b.models[model]["fold"]
                row = patients[(patients.model == model) & (patients.fold == final) & (patients.patient_id == pid)]
                assert out["probability"] == pytest.approx(float(row["prob"].iloc[0]), abs=1e-6)
            assert out["lge_likely"] == (out["probability"] >= out["cutoff"])
            assert out["decision"] == ("LGE likely" if out["lge_likely"] else
                                       "LGE unlikely — contrast may be reconsidered")


def test_bundle_holds_every_part_hashed(study, bundle_dir, bundle):
    from cinescar.screening.bundle import FORMAT, sha256_file

    index = json.loads((bundle_dir / "bundle.json").read_text())
    assert index["format"] == FORMAT == "cinescar-bundle/3"
    on_disk = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    assert set(index["files"]) == on_disk - {"bundle.json"}
    assert all(sha256_file(bundle_dir / f) == h for f, h in index["files"].items())
    meta = bundle.meta
    final = json.loads(study.path("results/evaluation/final_models.json").read_text())
    metrics = pd.read_csv(study.path("results/evaluation/metrics.csv"))
    for model in MODELS:
        info = meta["models"][model]
        assert info["fold"] == final[model]["fold"] and info["cutoff"] == final[model]["cutoff"]
        assert info["folds"] == final[model]["folds"] and info["operating_point"] == "pooled"
        # the pooled cut-off: every metrics row at the pooled operating point carries it
        rows = metrics[(metrics.model == model) & (metrics.operating_point == "pooled")]
        assert np.allclose(rows["cutoff"], info["cutoff"])
        assert info["validation_sensitivity"] == pytest.approx(final[model]["validation"]["sensitivity"])
    assert (bundle_dir / "radiomics_params.yaml").read_bytes() == Path(study.cfg["radiomics"]["params"]).read_bytes()
    assert meta["training_cohort"]["manifest_sha256"] == sha256_file(study.cohort / "manifest.csv")
    # the external cohorts it was tested on, with counts from the manifest (issue 12, item 9)
    man = pd.read_csv(study.cohort / "manifest.csv")
    ext = man[man["cohort"].str.startswith("external")]
    assert meta["external_cohorts"] == [{"name": "external", "n_patients": len(ext), "n_pos": int(ext["lge"].sum())}]
    assert bundle.describe()["external_cohorts"] == meta["external_cohorts"]
    assert {"scikit-learn", "skops", "torch", "numpy", "cinescar"} <= set(meta["versions"])
    # the config as shipped is public: paths relative to the run directory (issue 15), never absolute
    assert meta["config"]["radiomics"]["params"] == "radiomics_params.yaml"
    assert meta["preprocessing"]["size"] == 256
    ranges = meta["training_ranges"]
    assert ranges["spacing_mm"] == pytest.approx([1.2, 1.2]) and ranges["rows"] == [48, 48]
    assert 0 < ranges["intensity_p99"][0] <= ranges["intensity_p99"][1]
    # the radiomics model, fusion model and CNN are the chosen ones
    assert sorted(bundle.radiomics) == sorted(bundle.fusion) == [0, 1]  # every fold model
    k = json.loads(study.path("results/radiomics/chosen_k.json").read_text())["k"]
    assert all(m.k == k for m in bundle.radiomics.values())
    choice = json.loads(study.path("results/fusion/choice.json").read_text())
    assert all((m.k, m.classifier_name) == (choice["k"], choice["classifier"]) for m in bundle.fusion.values())


# ------------------------------------------------------------------------------------------- trust checks


def test_a_tampered_file_is_refused_before_unpickling(bundle_dir, tmp_path, monkeypatch):
    import skops.io
    import torch

    from cinescar.screening.bundle import load_bundle

    copy = _copy(bundle_dir, tmp_path / "bundle")
    target = copy / "fusion" / "fold0.skops"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    for module, name in ((skops.io, "loads"), (skops.io, "get_untrusted_types"), (torch, "load")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("deserialized a file before checking hashes"))
    with pytest.raises(CinescarError, match="SHA-256") as err:
        load_bundle(copy)
    assert str(target) in str(err.value)


def test_an_incompatible_or_foreign_bundle_is_refused(bundle_dir, tmp_path):
    from cinescar.screening.bundle import load_bundle, sha256_file

    copy = _copy(bundle_dir, tmp_path / "bundle")
    index = json.loads((copy / "bundle.json").read_text())
    index["format"] = "cinescar-bundle/1"
    (copy / "bundle.json").write_text(json.dumps(index))
    with pytest.raises(CinescarError, match="incompatible format version cinescar-bundle/1"):
        load_bundle(copy)
    index["format"] = "cinescar-bundle/2"  # the joblib format: refused before any pickle is opened
    (copy / "bundle.json").write_text(json.dumps(index))
    with pytest.raises(CinescarError, match="old format cinescar-bundle/2.*joblib pickles.*rebuild the bundle"):
        load_bundle(copy)
    index["format"] = "something-else/1"
    (copy / "bundle.json").write_text(json.dumps(index))
    with pytest.raises(CinescarError, match="not a cinescar bundle format"):
        load_bundle(copy)
    with pytest.raises(CinescarError, match="no bundle.json"):
        load_bundle(tmp_path)
    with pytest.raises(CinescarError, match="not the expected"):
        load_bundle(bundle_dir, expected_digest="0" * 64)
    assert load_bundle(bundle_dir, expected_digest=sha256_file(bundle_dir / "bundle.json")).digest


# ------------------------------------------------------------------- forged members (issue 25: loading runs no code)


class _OpensAMarker:
    """Pickled, it makes the unpickler call open(marker, "w"): the file appears iff a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _TouchesAMarkerOnLoad:
    """Stored by skops as an object whose __setstate__ (run when skops creates it) touches a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __setstate__(self, state):
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def _forge(bundle_dir: Path, dest: Path, member: str, content: bytes) -> Path:
    """A copy of the bundle with `member` replaced by `content` and bundle.json re-hashed (what anyone who can
    write the folder can do): only the content can be wrong, never a hash."""
    from cinescar.screening.bundle import BUNDLE_JSON, sha256_file

    forged = _copy(bundle_dir, dest)
    (forged / member).write_bytes(content)
    listing = json.loads((forged / BUNDLE_JSON).read_text())
    listing["files"][member] = sha256_file(forged / member)
    (forged / BUNDLE_JSON).write_text(json.dumps(listing))
    return forged


def _state_dict_bytes(state) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_trusted_types_are_exactly_what_the_bundle_models_hold(bundle):
    """members.TRUSTED_TYPES, recomputed from fitted objects: the bundle's own models and a fused model with
    each classifier a bundle can carry (cinescar.fusion.model.CLASSIFIERS)."""
    import dataclasses
    import warnings

    import skops.io as sio

    from cinescar.fusion.model import CLASSIFIERS, make_classifier
    from cinescar.screening.members import TRUSTED_TYPES

    fitted = [*bundle.radiomics.values(), *bundle.fusion.values()]
    template = bundle.fusion[0]
    rng = np.random.default_rng(0)
    X, y = rng.random((40, len(template.selected))), np.arange(40) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP does not converge on 40 random rows
        for name in CLASSIFIERS:
            fitted.append(dataclasses.replace(template, classifier=make_classifier(name, 0).fit(X, y),
                                              classifier_name=name))
    held = {t for obj in fitted for t in sio.get_untrusted_types(data=sio.dumps(obj))}
    assert held == set(TRUSTED_TYPES)


@pytest.mark.parametrize("member, content, match", [
    ("radiomics/fold0.skops", "pickle", "is not a skops file"),
    ("fusion/fold1.skops", "skops_evil", r"holds type\(s\) \['test_screening_bundle._TouchesAMarkerOnLoad'\] "
                                         "that are not trusted"),
    ("radiomics/fold1.skops", "skops_other", "holds a LogisticRegression, not a RadiomicsModel"),
    ("cnn/fold0.pt", "pickle", "is not plain network weights .*UnpicklingError"),
    ("cnn/fold1.pt", "wrong_weights", "does not fit its network"),
    ("cnn/fold1.pt", "not_a_state_dict", "is not a state_dict of named tensors"),
    ("cnn/fold0.json", b"{not json", "is not valid JSON"),
    ("cnn/fold1.json", b'{"network": {"dense_units": "x"}}', "describes no buildable network"),
    ("metadata.json", b"\xff\xfe", "is not valid JSON"),
    ("radiomics_params.yaml", b"setting: [unclosed", "is not valid YAML"),
    ("radiomics_params.yaml", b"!!python/object/apply:builtins.open ['MARKER', 'w']", "is not valid YAML"),
])
def test_a_forged_member_is_a_named_error_and_runs_no_code(bundle_dir, tmp_path, member, content, match):
    import pickle

    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from cinescar.screening.bundle import load_bundle

    marker = tmp_path / "code_ran"
    forged_bytes = {
        "pickle": lambda: pickle.dumps(_OpensAMarker(marker)),
        "skops_evil": lambda: sio.dumps(_TouchesAMarkerOnLoad(marker)),
        "skops_other": lambda: sio.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
        "wrong_weights": lambda: _state_dict_bytes({"conv.weight": __import__("torch").zeros(1)}),
        "not_a_state_dict": lambda: _state_dict_bytes([1, 2, 3]),
    }
    data = forged_bytes[content]() if isinstance(content, str) else content.replace(b"MARKER", str(marker).encode())
    forged = _forge(bundle_dir, tmp_path / "bundle", member, data)
    with pytest.raises(CinescarError, match=match) as err:
        load_bundle(forged)
    assert f"bundle {forged}: member {member} " in str(err.value)
    assert "rebuild the bundle" in str(err.value)
    assert not marker.exists()  # the forged object's code never ran


def test_the_forged_objects_would_run_code_if_trusted(tmp_path):
    """The control for the test above: each forged object does create its marker when a loader trusts it
    (joblib, as format 2 loaded it; skops told to trust its type), so an absent marker means refused."""
    import io
    import pickle

    import joblib
    import skops.io as sio

    first, second = tmp_path / "pickle_ran", tmp_path / "skops_ran"
    joblib.load(io.BytesIO(pickle.dumps(_OpensAMarker(first)))).close()
    blob = sio.dumps(_TouchesAMarkerOnLoad(second))
    sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    assert first.exists() and second.exists()


def test_an_old_joblib_bundle_is_refused_before_its_pickles_open(bundle_dir, tmp_path):
    import pickle

    from cinescar.screening.bundle import BUNDLE_JSON, load_bundle

    marker = tmp_path / "code_ran"
    old = _forge(bundle_dir, tmp_path / "bundle", "radiomics/fold0.joblib", pickle.dumps(_OpensAMarker(marker)))
    listing = json.loads((old / BUNDLE_JSON).read_text())
    listing["format"] = "cinescar-bundle/2"
    (old / BUNDLE_JSON).write_text(json.dumps(listing))
    with pytest.raises(CinescarError, match=f"bundle {old} has the old format cinescar-bundle/2.*rebuild"):
        load_bundle(old)
    assert not marker.exists()


def test_a_forged_params_file_is_named_when_the_extractor_is_built(bundle_dir, tmp_path, capsys):
    """Valid YAML that pyradiomics' schema rejects: named at the extraction (the extractor is built lazily),
    and `cinescar screen` prints it as an error line, not an internal error."""
    from cinescar.screening.bundle import load_bundle

    forged = _forge(bundle_dir, tmp_path / "bundle", "radiomics_params.yaml", b"setting:\n  binCount: many\n")
    with pytest.raises(CinescarError, match=f"bundle {forged}: member radiomics_params.yaml is not a usable "
                                            "pyradiomics parameter file") as err:
        load_bundle(forged).extractor()
    assert "cinescar-bundle-" not in str(err.value)  # the temporary copy's path is not what the user should fix


def test_cli_names_a_forged_member(study, bundle_dir, tmp_path, capsys):
    from cinescar.cli import main

    forged = _forge(bundle_dir, tmp_path / "bundle", "cnn/fold0.pt", b"not a torch file")
    rc = main(["screen", "--bundle", str(forged), "--manifest", str(study.cohort / "manifest.csv"),
               "--patient", _splits(study)["test"][0], "--no-gradcam"])
    err = capsys.readouterr().err
    assert rc == 2 and "internal error" not in err
    assert f"bundle {forged}: member cnn/fold0.pt is not plain network weights" in err


# ------------------------------------------------------------------------------------------------ exams


def test_bad_exams_get_the_cohort_validation_errors(study, bundle, tmp_path):
    from cinescar.cohort.validate import check_exam
    from cinescar.screening.screen import Exam, screen_exam

    exam = _exam(study, _splits(study)["test"][0])
    empty = tmp_path / "empty_mask.nii.gz"
    mask = sitk.ReadImage(str(exam.files["es_mask"]))
    blank = sitk.GetImageFromArray(np.zeros_like(sitk.GetArrayFromImage(mask)))
    blank.CopyInformation(mask)
    sitk.WriteImage(blank, str(empty))
    files = {**exam.files, "es_mask": empty}
    with pytest.raises(CohortError) as err:
        screen_exam(bundle, Exam(exam.patient_id, files))
    assert err.value.path == str(empty) and err.value.patient_id == exam.patient_id
    assert str(err.value) == str(check_exam(exam.patient_id, files)[0][0])  # word for word
    assert "mask is empty" in str(err.value)

    shifted = tmp_path / "shifted_mask.nii.gz"
    mask.SetSpacing((2.0, 2.0, 8.0))
    sitk.WriteImage(mask, str(shifted))
    with pytest.raises(CohortError, match="mask spacing") as err:
        screen_exam(bundle, Exam(exam.patient_id, {**exam.files, "ed_mask": shifted}))
    assert err.value.path == str(shifted)

    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    with pytest.raises(CohortError, match="unreadable image") as err:
        screen_exam(bundle, Exam(exam.patient_id, {**exam.files, "ed_image": broken}))
    assert err.value.path == str(broken)


def write_dicom_series(source: Path, folder: Path, series_uid: str) -> None:
    """One DICOM file per slice of `source`, with the geometry tags SimpleITK's series reader needs."""
    vol = sitk.ReadImage(str(source))
    if vol.GetPixelID() not in (sitk.sitkInt16, sitk.sitkUInt8, sitk.sitkUInt16):
        vol = sitk.Cast(vol, sitk.sitkInt16)
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d, sp = vol.GetDirection(), vol.GetSpacing()
    for z in range(vol.GetDepth()):
        sl = vol[:, :, z]
        tags = {"0020|000e": series_uid, "0008|0060": "MR", "0020|0013": str(z),
                "0020|0032": "\\".join(f"{v:.6f}" for v in vol.TransformIndexToPhysicalPoint((0, 0, z))),
                "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
                "0028|0030": f"{sp[1]:.6f}\\{sp[0]:.6f}", "0018|0050": f"{sp[2]:.6f}"}
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z:03d}.dcm"))
        writer.Execute(sl)


def test_exam_folder_layout(study, bundle, tmp_path):
    from cinescar.screening.screen import exam_from_folder, screen_exam

    pid = _splits(study)["test"][0]
    exam = _exam(study, pid)
    folder = tmp_path / pid
    folder.mkdir()
    names = {"ed_image": "ED.nii.gz", "ed_mask": "ed_mask.nii.gz", "es_image": "ES.nii.gz", "es_mask": "ES_Mask.mha"}
    for col, name in names.items():
        sitk.WriteImage(sitk.ReadImage(str(exam.files[col])), str(folder / name))
    from_folder = screen_exam(bundle, exam_from_folder(folder))
    from_manifest = screen_exam(bundle, exam)
    assert from_folder["patient_id"] == pid
    for model in MODELS:
        assert from_folder["models"][model]["probability"] == from_manifest["models"][model]["probability"]
    dicom = tmp_path / "dicom_exam"
    write_dicom_series(exam.files["ed_image"], dicom / "ED", "1.2.826.0.1.3680043.2.1125.1")
    write_dicom_series(exam.files["ed_mask"], dicom / "ED_mask", "1.2.826.0.1.3680043.2.1125.2")
    for col, name in (("es_image", "ES.nii.gz"), ("es_mask", "ES_mask.nii.gz")):
        shutil.copyfile(exam.files[col], dicom / name)
    from_dicom = screen_exam(bundle, exam_from_folder(dicom, patient_id=pid))
    assert from_dicom["exam"]["ed_image"].endswith("ED") and from_dicom["patient_id"] == pid
    for model in MODELS:  # DICOM stores spacing as decimal text: equal up to float rounding
        assert from_dicom["models"][model]["probability"] == pytest.approx(
            from_manifest["models"][model]["probability"], abs=1e-6)

    (folder / "ES_Mask.mha").unlink()
    with pytest.raises(CohortError, match="no ES_mask found"):
        exam_from_folder(folder, masks_optional=False)
    # masks are optional (issue 22), but a bundle without a segmenter cannot predict them: a named refusal
    assert "es_mask" not in exam_from_folder(folder).files
    with pytest.raises(CohortError, match="no ES mask and the bundle carries no segmenter"):
        screen_exam(bundle, exam_from_folder(folder))
    sitk.WriteImage(sitk.ReadImage(str(exam.files["ed_image"])), str(folder / "ED.nrrd"))
    with pytest.raises(CohortError, match="several candidates for ED"):
        exam_from_folder(folder)


def test_out_of_distribution_exams_are_flagged_not_silent(study, bundle, tmp_path):
    from cinescar.screening.screen import Exam, screen_exam

    exam = _exam(study, _splits(study)["test"][0])
    # no out-of-distribution warning (the tiny study's 4-slice stacks get the plausibility one, tested elsewhere)
    assert [w for w in screen_exam(bundle, exam)["warnings"] if "only 4 slices" not in w] == []
    # the same anatomy stored on another intensity scale and at 2.5 mm pixels
    img = sitk.ReadImage(str(exam.files["ed_image"]), sitk.sitkFloat32)
    scaled = sitk.GetImageFromArray(sitk.GetArrayFromImage(img) / 1000.0)
    scaled.CopyInformation(img)
    sitk.WriteImage(scaled, str(tmp_path / "ed_scaled.nii.gz"))
    result = screen_exam(bundle, Exam(exam.patient_id, {**exam.files, "ed_image": tmp_path / "ed_scaled.nii.gz"}))
    assert any("out of distribution: ED raw intensity (99th percentile)" in w for w in result["warnings"])
    assert all(result["models"][m]["probability"] is not None for m in MODELS)  # numbers, with a warning

    wide = {}
    for col in ("ed_image", "ed_mask", "es_image", "es_mask"):
        im = sitk.ReadImage(str(exam.files[col]))
        im.SetSpacing((2.5, 2.5, 8.0))
        wide[col] = tmp_path / f"{col}_wide.nii.gz"
        sitk.WriteImage(im, str(wide[col]))
    result = screen_exam(bundle, Exam(exam.patient_id, wide))
    assert any("out of distribution: ED x pixel spacing 2.5 mm" in w for w in result["warnings"])


# ---------------------------------------------------------------------------------------- the pieces


def test_restricted_extraction_equals_the_full_one(study, bundle):
    """Screening extracts only the radiomic features its models read; they equal the full extraction's."""
    from cinescar.preprocessing.store import load_arrays, load_index
    from cinescar.radiomics.extract import extract_image, make_extractor

    index = load_index(study.path("results/preprocess/index.parquet")).head(6)
    images, masks = load_arrays(index, study.path("results/preprocess"))
    needed = bundle.radiomics_features_needed()
    full = make_extractor(bundle.radiomics_params)
    for i in range(3):
        sub = extract_image(bundle.extractor(), images[i], masks[i])
        ref = extract_image(full, images[i], masks[i])
        assert set(needed) <= set(sub) and len(sub) < len(ref)
        assert all(sub[n] == ref[n] for n in needed)


def test_restricted_extraction_groups_image_types_by_feature_class():
    """Features of several image types and classes (the shipped parameter file): one extractor per group of
    image types needing the same classes, values equal to the full extraction's."""
    from cinescar.radiomics.extract import _probe_image, extract_image, make_extractor
    from cinescar.radiomics.restricted import GroupedExtractor, restricted_extractor

    params = Path(__file__).resolve().parents[1] / "config" / "radiomics.yaml"
    needed = ["exponential_firstorder_RobustMeanAbsoluteDeviation", "logarithm_ngtdm_Strength",
              "logarithm_firstorder_Variance", "gradient_glcm_Idm", "wavelet-LH_firstorder_Median",
              "original_shape2D_Elongation", "original_firstorder_10Percentile"]
    sub = restricted_extractor(params, needed)
    assert isinstance(sub, GroupedExtractor) and len(sub.parts) == 4  # firstorder(+shape) | fo+ngtdm | glcm
    image, mask = _probe_image()
    got, ref = extract_image(sub, image, mask), extract_image(make_extractor(params), image, mask)
    assert all(got[n] == ref[n] for n in needed)
    assert not any("_glcm_" in n and not n.startswith("gradient") for n in got)


# ----------------------------------------------------------------------------------------- MLflow, CLI


def test_registered_pyfunc_model_predicts(study, bundle_dir, bundle, tmp_path, monkeypatch, caplog):
    import mlflow

    from cinescar.screening.pyfunc import OUTPUT_COLUMNS, register_bundle, save_pyfunc, using_tracking_uri
    from cinescar.screening.screen import screen_exam

    monkeypatch.chdir(tmp_path)
    cfg = {"seed": 0, "cohort": {"name": "tiny"}, "mlflow": {"enabled": True,
                                                             "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    from cinescar import tracking

    tracking.configure(cfg)  # what the bundle job's script does (cinescar.jobs.setup_job)
    info = register_bundle(bundle_dir, cfg)
    assert info is not None and info["name"] == "cinescar-scar-screening" and str(info["version"]) == "1"
    with using_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db"):
        model = mlflow.pyfunc.load_model("models:/cinescar-scar-screening/1",
                                         model_config={"exam_root": str(study.root)})  # exams live there
    pids = _splits(study)["test"][:2]
    exams = [_exam(study, pid) for pid in pids]
    df = pd.DataFrame([{"patient_id": e.patient_id, **{c: str(p) for c, p in e.files.items()}} for e in exams])
    out = model.predict(df)
    assert list(out.columns) == OUTPUT_COLUMNS and list(out["patient_id"]) == pids
    for e, (_, row) in zip(exams, out.iterrows()):
        direct = screen_exam(bundle, e)
        for m in MODELS:
            assert row[f"{m}_probability"] == pytest.approx(direct["models"][m]["probability"], abs=1e-12)
            assert row[f"{m}_decision"] == direct["models"][m]["decision"]
        assert row["n_images"] == len(direct["images"])
    local = mlflow.pyfunc.load_model(str(save_pyfunc(bundle_dir, tmp_path / "pyfunc")),
                                     model_config={"exam_root": str(study.root)}).predict(df.head(1))
    pd.testing.assert_frame_equal(local, out.head(1))

    with caplog.at_level("WARNING"):
        assert register_bundle(bundle_dir, {**cfg, "mlflow": {"enabled": False}}) is None
        assert register_bundle(bundle_dir, {**cfg, "mlflow": {"tracking_uri": f"file://{tmp_path}/mlruns"}}) is None
    assert "not registered" in caplog.text


def test_cli_prints_and_writes_the_result(study, bundle_dir, tmp_path, capsys):
    from cinescar.cli import main

    pid = _splits(study)["test"][0]
    out = tmp_path / "result.json"
    rc = main(["screen", "--bundle", str(bundle_dir), "--manifest", str(study.cohort / "manifest.csv"),
               "--patient", pid, "--out", str(out), "--gradcam-dir", str(tmp_path / "cams"), "--gradcam-images", "2"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert printed == result
    assert set(result) == {"format", "patient_id", "exam", "bundle", "screening_rule", "models", "images", "gradcam",
                           "warnings", "timing_s", "mask_source", "segmentation"}
    assert result["format"] == "cinescar-screening-result/2" and result["patient_id"] == pid
    assert result["mask_source"] == {"ED": "manual", "ES": "manual"} and result["segmentation"]["qc_flags"] == []
    assert set(result["models"]) == set(MODELS)
    for m in MODELS:
        assert set(result["models"][m]) >= {"label", "fold", "probability", "cutoff", "decision", "lge_likely",
                                            "validation_sensitivity", "driving_image"}
    assert {"image_id", "phase", "slice", *MODELS} == set(result["images"][0])
    assert len(result["gradcam"]) == 2
    top = sorted(result["images"], key=lambda r: -r["dl"])[:2]
    assert [g["image_id"] for g in result["gradcam"]] == [r["image_id"] for r in top]
    assert all(Path(g["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for g in result["gradcam"])
    assert result["bundle"]["sha256"] and result["bundle"]["format"] == "cinescar-bundle/3"

    rc = main(["screen", "--bundle", str(bundle_dir), "--manifest", str(study.cohort / "manifest.csv"),
               "--patient", "NOBODY"])
    assert rc == 2 and "patient NOBODY" in capsys.readouterr().err


# ------------------------------------------------------------------------- refusals (issue 15, "Refuse what is wrong")


def test_screen_refuses_an_implausible_exam_and_warns_on_an_unusual_one(study, bundle, tmp_path):
    from cinescar.screening.screen import Exam, screen_exam

    exam = _exam(study, _splits(study)["test"][0])
    ones = tmp_path / "ones.nii.gz"
    mask = sitk.ReadImage(str(exam.files["ed_mask"]))
    full = sitk.GetImageFromArray(np.ones_like(sitk.GetArrayFromImage(mask)))
    full.CopyInformation(mask)
    sitk.WriteImage(full, str(ones))
    with pytest.raises(CohortError, match="not a myocardium contour") as err:  # was: "LGE likely", p = 1.0
        screen_exam(bundle, Exam(exam.patient_id, {**exam.files, "ed_mask": ones}))
    assert err.value.path == str(ones)
    with pytest.raises(CohortError, match="same file is given as the ED and the ES image"):
        screen_exam(bundle, Exam(exam.patient_id, {**exam.files, "es_image": exam.files["ed_image"],
                                                   "es_mask": exam.files["ed_mask"]}))
    # the tiny study's stacks have 4 slices: unusual, not wrong -- a warning in the result, every number kept
    result = screen_exam(bundle, exam)
    assert any("only 4 slices hold myocardium" in w for w in result["warnings"])
    assert all(result["models"][m]["probability"] is not None for m in MODELS)


def test_patient_ids_cannot_write_outside_the_chosen_folder(study, bundle_dir, bundle, tmp_path, capsys):
    from cinescar.cli import main
    from cinescar.screening.screen import Exam, screen_exam

    cohort = tmp_path / "cohort"
    shutil.copytree(study.cohort, cohort)
    m = pd.read_csv(cohort / "manifest.csv", dtype=str, keep_default_na=False)
    m.loc[0, "patient_id"] = "../../escaped"
    m.to_csv(cohort / "manifest.csv", index=False)
    cams = tmp_path / "deep" / "er" / "cams"
    rc = main(["screen", "--bundle", str(bundle_dir), "--manifest", str(cohort / "manifest.csv"), "--patient",
               "../../escaped", "--gradcam-dir", str(cams)])
    assert rc == 2 and "must match [A-Za-z0-9_-]+" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*escaped*"))
    exam = _exam(study, _splits(study)["test"][0])
    with pytest.raises(CohortError, match="must match"):
        screen_exam(bundle, Exam("../x", exam.files), gradcam_dir=cams)


def test_gradcam_folder_keeps_only_this_runs_overlays_of_the_patient(study, bundle, tmp_path):
    from cinescar.screening.screen import screen_exam

    exam = _exam(study, _splits(study)["test"][0])
    cams = tmp_path / "cams"
    cams.mkdir()
    stale = cams / f"{exam.patient_id}_ES_99_gradcam.png"
    other = cams / "SOMEONE_ELSE_ED_00_gradcam.png"
    stale.write_bytes(b"old")
    other.write_bytes(b"other patient")
    result = screen_exam(bundle, exam, gradcam_dir=cams, gradcam_images=1)
    assert not stale.exists() and other.exists()  # the job's own outputs are replaced, nobody else's
    assert sorted(p.name for p in cams.glob(f"{exam.patient_id}_*")) == [Path(result["gradcam"][0]["png"]).name]


def test_pyfunc_pins_the_bundle_digest_and_refuses_ids_and_paths(study, bundle_dir, tmp_path, monkeypatch):
    import mlflow

    from cinescar.screening.pyfunc import save_pyfunc

    monkeypatch.chdir(tmp_path)
    model_dir = save_pyfunc(bundle_dir, tmp_path / "pyfunc")
    exam = _exam(study, _splits(study)["test"][0])
    row = {"patient_id": exam.patient_id, **{c: str(p) for c, p in exam.files.items()}}
    model = mlflow.pyfunc.load_model(str(model_dir), model_config={"exam_root": str(study.root)})
    assert model.predict(pd.DataFrame([row]))["patient_id"].tolist() == [exam.patient_id]
    with pytest.raises(CohortError, match="must match"):
        model.predict(pd.DataFrame([{**row, "patient_id": "../../x"}]))
    with pytest.raises(CohortError, match="leads outside"):
        model.predict(pd.DataFrame([{**row, "ed_image": "/etc/passwd"}]))
    with pytest.raises(CohortError, match="leads outside"):  # default root: the working directory
        mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame([row]))
    # a bundle.json changed after logging (even with consistent file hashes) no longer matches the pinned digest
    shipped = next(model_dir.rglob("bundle.json"))
    listing = json.loads(shipped.read_text())
    listing["created_utc"] = "2000-01-01T00:00:00+00:00"
    shipped.write_text(json.dumps(listing))
    with pytest.raises(CinescarError, match="not the expected"):
        mlflow.pyfunc.load_model(str(model_dir))


def test_bundle_files_are_read_once_and_loaded_from_the_hashed_bytes(bundle_dir, monkeypatch):
    import builtins
    import io

    from cinescar.screening import bundle as bundle_mod

    opened: list[str] = []
    real_open = io.open

    def counting_open(file, *args, **kwargs):
        if str(file).startswith(str(bundle_dir)):
            opened.append(Path(file).relative_to(bundle_dir).as_posix())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)  # open(), skops, torch
    monkeypatch.setattr(io, "open", counting_open)  # pathlib's read_bytes / read_text
    loaded = bundle_mod.load_bundle(bundle_dir)
    listed = set(loaded.listing["files"])
    counts = {name: opened.count(name) for name in listed}
    assert all(n == 1 for n in counts.values()), counts  # was: twice (hash, then load)


def test_malformed_metadata_is_a_clear_error(bundle_dir, tmp_path):
    from cinescar.screening.bundle import BUNDLE_JSON, METADATA_JSON, load_bundle, sha256_file

    broken = _copy(bundle_dir, tmp_path / "b")
    meta = json.loads((broken / METADATA_JSON).read_text())
    del meta["models"]["fusion"]
    meta["cnn"] = "not a mapping"
    (broken / METADATA_JSON).write_text(json.dumps(meta))
    listing = json.loads((broken / BUNDLE_JSON).read_text())
    listing["files"][METADATA_JSON] = sha256_file(broken / METADATA_JSON)  # consistent hashes: only the content is bad
    (broken / BUNDLE_JSON).write_text(json.dumps(listing))
    with pytest.raises(CinescarError, match="metadata.json.*malformed"):
        load_bundle(broken)


def test_no_credentials_or_absolute_paths_in_the_bundle(bundle_dir):
    from cinescar.screening.bundle import METADATA_JSON
    from cinescar.screening.pyfunc import requirements

    text = "\n".join(p.read_text(encoding="utf-8") for p in bundle_dir.rglob("*.json"))
    assert str(bundle_dir.parent.parent) not in text  # the study's absolute location
    assert json.loads((bundle_dir / METADATA_JSON).read_text())["config"]["mlflow"]["tracking_uri"].startswith(
        ("sqlite:///results", "sqlite:///<outside", "http"))
    assert all("+" not in r for r in requirements()), requirements()  # installable from a registry (no +cpu)
    assert any(r.startswith("skops==") for r in requirements())  # a serving environment can read the models


# ------------------------------------------------------------------------ the segmenter in the bundle (issue 22)


@pytest.fixture(scope="session")
def seg_bundle_dir(study):
    """The tiny study's bundle with a smoke-sized segmenter trained on its development patients' masks."""
    return build_segmenter_bundle(study)


def _exam_without_masks(study, pid, folder: Path) -> Path:
    exam = _exam(study, pid)
    folder.mkdir(parents=True, exist_ok=True)
    for col, name in (("ed_image", "ED.nii.gz"), ("es_image", "ES.nii.gz")):
        shutil.copyfile(exam.files[col], folder / name)
    return folder


def test_an_exam_without_masks_is_segmented_and_screened(study, seg_bundle_dir, tmp_path):
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import exam_from_folder, screen_exam
    from cinescar.screening.segment import segment_api

    bundle = load_bundle(seg_bundle_dir)
    assert bundle.segmenter is not None and len(bundle.segmenter.nets) == 2
    seg_meta = bundle.meta["segmentation"]
    assert seg_meta["labels"] == {"background": 0, "myocardium": 1, "lv_cavity": 2}
    assert len(seg_meta["training_patients_sha256"]) == 64
    assert not any(pid in json.dumps(seg_meta) for pid in _splits(study)["folds"][0]["train"])  # no IDs
    pid = _splits(study)["test"][0]
    folder = _exam_without_masks(study, pid, tmp_path / pid)
    result = screen_exam(bundle, exam_from_folder(folder))
    assert result["mask_source"] == {"ED": "predicted", "ES": "predicted"}
    assert result["segmentation"]["lv"]["ED_lv_volume_ml"] >= 0
    if result["segmentation"]["qc_flags"]:
        assert all(m["lge_likely"] is None for m in result["models"].values())
    # the masks `cinescar segment` writes are the ones screening used: same probabilities from them
    written = segment_api(seg_bundle_dir, folder, out=tmp_path / "masks")
    assert written[0]["qc_flags"] == result["segmentation"]["qc_flags"]
    for phase in ("ED", "ES"):
        mask = sitk.ReadImage(str(tmp_path / "masks" / f"{phase}_mask.nii.gz"))
        img = sitk.ReadImage(str(folder / f"{phase}.nii.gz"))
        assert geometry_mismatch(img, mask) is None
        shutil.copyfile(tmp_path / "masks" / f"{phase}_mask.nii.gz", folder / f"{phase}_mask.nii.gz")
    again = screen_exam(bundle, exam_from_folder(folder))
    assert again["mask_source"] == {"ED": "manual", "ES": "manual"}
    for m in MODELS:
        assert again["models"][m]["probability"] == pytest.approx(result["models"][m]["probability"], abs=1e-9)


def test_a_segmentation_that_fails_quality_control_gets_no_decision(study, seg_bundle_dir, tmp_path):
    from cinescar.screening.bundle import load_bundle
    from cinescar.screening.screen import INDETERMINATE, exam_from_folder, screen_exam

    bundle = load_bundle(seg_bundle_dir)
    bundle.meta["segmentation"]["qc"] = {**bundle.meta["segmentation"]["qc"], "min_confidence": 1.01}
    pid = _splits(study)["test"][0]
    result = screen_exam(bundle, exam_from_folder(_exam_without_masks(study, pid, tmp_path / pid)))
    assert any(f.endswith("low_confidence") for f in result["segmentation"]["qc_flags"])
    for m in MODELS:
        assert result["models"][m]["decision"] == INDETERMINATE and result["models"][m]["lge_likely"] is None
    assert any("quality control" in w for w in result["warnings"])


def test_forged_segmenter_weights_are_refused_by_name(seg_bundle_dir, tmp_path):
    import hashlib

    from cinescar.screening.bundle import load_bundle

    forged = tmp_path / "forged"
    shutil.copytree(seg_bundle_dir, forged)
    marker = tmp_path / "ran.txt"
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (forged / "segmentation" / "fold0.pt").write_bytes(pickle.dumps(Evil()))
    listing = json.loads((forged / "bundle.json").read_text())
    listing["files"]["segmentation/fold0.pt"] = hashlib.sha256((forged / "segmentation/fold0.pt").read_bytes()
                                                               ).hexdigest()
    (forged / "bundle.json").write_text(json.dumps(listing))
    with pytest.raises(CinescarError, match=r"segmentation/fold0\.pt.*not a plain state_dict"):
        load_bundle(forged)
    assert not marker.exists()


# ------------------------------------------------------------------- the deployment case (issue 22, item 4)


def _deployment(study, bundle_dir: Path, masks_of, tmp_path: Path) -> dict[str, pd.DataFrame]:
    """Both deployment jobs on every centre of the tiny study, with predicted masks `masks_of(pid, phase) -> array`
    written where the segmentation stage writes them."""
    from cinescar.cohort.contract import read_manifest, resolve, slugify
    from cinescar.config import load_config
    from cinescar.screening.run import deployment_center_job, deployment_job

    manifest = read_manifest(study.cohort)
    cfg = load_config(overrides={"seed": 3, "mlflow": {"enabled": False}})
    patients, features = [], []
    with working_dir(tmp_path):
        for center in sorted({slugify(c) for c in manifest["center"]}):
            masks = tmp_path / "masks" / center
            masks.mkdir(parents=True)
            for _, r in manifest[manifest["center"].map(slugify) == center].iterrows():
                for phase, col in (("ED", "ed_mask"), ("ES", "es_mask")):
                    manual = sitk.ReadImage(str(resolve(study.cohort, r[col])))
                    out = sitk.GetImageFromArray(masks_of(r["patient_id"], phase, sitk.GetArrayFromImage(manual)))
                    out.CopyInformation(manual)
                    sitk.WriteImage(out, str(masks / f"{r['patient_id']}_{phase}.nii.gz"))
            outs = {"patients": str(tmp_path / f"{center}_p.parquet"), "features": str(tmp_path / f"{center}_f.parquet")}
            deployment_center_job({"bundle": str(bundle_dir / "bundle.json"), "manifest": str(study.cohort / "manifest.csv"),
                                   "splits": str(study.path("results/splits/splits.json")), "masks": str(masks)},
                                  outs, {"cfg": cfg}, center)
            patients.append(outs["patients"])
            features.append(outs["features"])
        summary = {k: str(tmp_path / f"{k}.csv") for k in ("comparison", "patients", "icc")}
        deployment_job({"patients": patients, "features": features}, summary, {"cfg": cfg})
    return {k: pd.read_csv(v) for k, v in summary.items()}


def test_deployment_case_with_the_manual_masks_as_predicted_changes_nothing(study, bundle_dir, tmp_path):
    """Plumbing: 'predicted' masks equal to the manual ones give the same probabilities, ICC 1 and full agreement;
    the manual side is what the study itself reported (out of fold for development patients)."""
    out = _deployment(study, bundle_dir, lambda pid, phase, m: m, tmp_path)
    p = out["patients"]
    splits = _splits(study)
    assert set(p["patient_id"]) == {*splits["test"], *splits["external"], *(x for f in splits["folds"] for x in f["val"])}
    assert np.allclose(p["prob_manual"], p["prob_predicted"], atol=1e-12)
    c = out["comparison"]
    assert set(c["role"]) >= {"test", "development (out of fold)", "out of fold + external"}
    assert (c["decision_agreement"] == 1.0).all() and (c["abs_dp_max"] < 1e-12).all()
    assert np.allclose(c["delta_auc"].dropna(), 0.0)
    icc = out["icc"][out["icc"]["role"] == "all"].dropna(subset=["icc_3_1"])
    assert len(icc) > 0 and np.allclose(icc["icc_3_1"], 1.0)
    # development patients: the probability of the fold model that never saw them = the study's out-of-fold one
    preds = pd.read_parquet(study.path("results/radiomics/predictions.parquet"))
    oof = preds[preds["split"] == "val"].groupby("patient_id")["prob"].max()
    dev = p[(p["role"] == "development") & (p["model"] == "radiomics")].set_index("patient_id")["prob_manual"]
    assert np.allclose(dev.to_numpy(), oof.loc[dev.index].to_numpy(), atol=1e-9)


def test_deployment_case_sees_a_worse_mask(study, bundle_dir, tmp_path):
    """An eroded 'predicted' myocardium changes the features and probabilities, and the tables say so."""
    from scipy import ndimage

    def eroded(pid, phase, m):
        return np.stack([ndimage.binary_erosion(s > 0, iterations=1).astype(np.uint8) if s.sum() > 40 else s
                         for s in m]).astype(m.dtype)

    out = _deployment(study, bundle_dir, eroded, tmp_path)
    p = out["patients"]
    assert (np.abs(p["prob_manual"] - p["prob_predicted"]) > 1e-6).any()
    icc = out["icc"][out["icc"]["role"] == "all"].dropna(subset=["icc_3_1"])
    assert (icc["icc_3_1"] < 0.999).any()
    c = out["comparison"]
    assert ((c["n"] > 0) & c["auc_manual"].notna()).all()
