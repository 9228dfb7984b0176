"""The synthetic cohort: contract, determinism, safety of the output folder, label model and difficulty."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from cinescar.cohort import synth
from cinescar.cohort.contract import REQUIRED_COLUMNS, read_manifest
from cinescar.cohort.figure import render_cohort_figure
from cinescar.cohort.synth import (MANIFEST_COLUMNS, MARKER, draw_labels, draw_population, generate_cohort,
                                   simulate_patient)
from cinescar.cohort.synth_signal import CENTRES, TISSUES, bssfp_signal
from cinescar.errors import CohortError


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """One 34-patient cohort shared by the read-only checks (generation is the slow part)."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    generate_cohort(out, n_internal=26, n_external=8, seed=3)
    return out, read_manifest(out)


def _read(path):
    img = sitk.ReadImage(str(path))
    return img, sitk.GetArrayFromImage(img)


def test_manifest_follows_the_contract(cohort):
    out, m = cohort
    assert list(m.columns) == MANIFEST_COLUMNS
    assert set(REQUIRED_COLUMNS) <= set(m.columns)
    assert m.patient_id.is_unique and all(re.fullmatch(r"SYN\d{4}", p) for p in m.patient_id)
    assert sorted(m.cohort.unique()) == ["external", "internal"]
    assert (m.cohort == "internal").sum() == 26 and (m.cohort == "external").sum() == 8
    assert set(m.lge.unique()) <= {0, 1}
    for col in ("ed_image", "ed_mask", "es_image", "es_mask"):
        assert all(not p.startswith("/") and (out / p).is_file() for p in m[col])
    assert m.loc[m.ed_image.index[0], "ed_image"] == f"images/{m.patient_id.iloc[0]}_ED.nii.gz"
    # scar slices: present exactly for LGE+, valid indices of slices that hold myocardium
    for _, r in m.iterrows():
        if r.lge == 0:
            assert pd.isna(r.scar_slices)
            continue
        idx = [int(s) for s in str(r.scar_slices).split(";")]
        _, mask = _read(out / r.ed_mask)
        assert idx and all(0 <= s < mask.shape[0] and mask[s].any() for s in idx)
    marker = json.loads((out / MARKER).read_text())
    assert marker["complete"] is True and marker["parameters"]["n_internal"] == 26


def test_centres_vendors_and_external_shift(cohort):
    _, m = cohort
    internal = m[m.cohort == "internal"]
    assert internal.center.nunique() == 4
    assert set(internal.vendor) == {"Philips", "GE", "Siemens"}
    assert set(m[m.cohort == "external"].center) == {"Centre E"}
    assert not set(m[m.cohort == "external"].center) & set(internal.center)


def test_images_and_masks_share_geometry(cohort):
    out, m = cohort
    for _, r in m.iterrows():
        for phase in ("ed", "es"):
            img, a = _read(out / r[f"{phase}_image"])
            msk, b = _read(out / r[f"{phase}_mask"])
            assert a.dtype == np.int16 and b.dtype == np.uint8
            assert set(np.unique(b)) <= {0, 1}
            assert a.shape == b.shape and 8 <= a.shape[0] <= 12
            assert img.GetSpacing() == msk.GetSpacing() and img.GetOrigin() == msk.GetOrigin()
            assert img.GetDirection() == msk.GetDirection()
            px, py, pz = img.GetSpacing()
            assert px == py and 0.6 <= px <= 1.4 and 8.0 <= pz <= 10.0
            assert a.min() >= 0 and a.max() > 50  # integer grey values on an arbitrary vendor scale
            assert b.sum(axis=(1, 2)).astype(bool).sum() >= 5  # most slices hold myocardium


def test_clinical_columns_are_plausible_and_consistent(cohort):
    _, m = cohort
    assert np.allclose(m.SV, m.LVEDV - m.LVESV, atol=0.15)
    assert np.allclose(m.LVEF, 100 * m.SV / m.LVEDV, atol=0.15)
    assert np.allclose(m.BMI, m.weight / (m.height / 100) ** 2, atol=0.15)
    assert m.LVEF.between(40, 92).all() and m.MWT.between(8, 40).all() and m.LVM.between(50, 450).all()
    assert (m.LVEDV > m.LVESV).all() and set(m.sex) <= {"M", "F"} and m.age.between(18, 90).all()


def test_label_model_prevalence_and_associations():
    pop = draw_population(759, 100, seed=11)  # paper size, no images rendered
    df = pd.DataFrame([{"cohort": p.cohort, "lge": p.lge, **p.true_metrics} for p in pop])
    prev = df.groupby("cohort").lge.mean()
    assert abs(prev["internal"] - 0.36) < 0.005 and abs(prev["external"] - 0.57) < 0.005
    internal = df[df.cohort == "internal"]
    # scar is more likely with thicker and heavier ventricles (paper Table 1), but not determined by them
    for col in ("MWT", "LVM"):
        auc = roc_auc_score(internal.lge, internal[col])
        assert 0.6 < auc < 0.95, (col, auc)
    labels = draw_labels(np.zeros(50), 0.3, np.random.default_rng(0))
    assert labels.sum() == 15


def test_trivial_image_statistics_do_not_give_the_label_away(cohort):
    """(a) No single per-patient intensity statistic separates LGE+ from LGE- (AUC either way < 0.95)."""
    out, m = cohort
    raw, ratio = [], []
    for _, r in m.iterrows():
        _, a = _read(out / r.ed_image)
        _, b = _read(out / r.ed_mask)
        a, b = a.astype(float), b.astype(bool)
        cavity = np.zeros_like(b)
        for s in range(len(b)):  # blood pool: inside the ring, away from its edge
            cavity[s] = ndimage.binary_erosion(ndimage.binary_fill_holes(b[s]) & ~b[s], iterations=2)
        raw.append(a[b].mean())
        ratio.append(a[b].mean() / a[cavity].mean())
    for name, values in (("mean myocardial intensity", raw), ("myocardium / blood", ratio),
                         ("MWT", m.MWT), ("LVM", m.LVM)):
        auc = roc_auc_score(m.lge, values)
        assert max(auc, 1 - auc) < 0.95, (name, auc)


def test_scar_changes_the_bssfp_signal_at_every_centre():
    """(b) Scar (T1 +10-25 %, T2 +10-30 %) differs from healthy myocardium under every vendor protocol."""
    my = TISSUES["myocardium"]
    for c in CENTRES:
        for flip in c.flip_deg:
            for tr in c.tr_ms:
                healthy = bssfp_signal(my.t1, my.t2, my.pd, flip, tr, tr / 2)
                for d1, d2 in ((0.10, 0.30), (0.25, 0.10), (0.175, 0.20)):
                    scar = bssfp_signal(my.t1 * (1 + d1), my.t2 * (1 + d2), my.pd, flip, tr, tr / 2)
                    assert abs(scar / healthy - 1) > 0.005, (c.name, flip, tr, d1, d2)


def test_scar_is_patchy_partial_volume_and_the_only_difference():
    """(b) Counterfactual: the same patient rendered without scar differs only inside the scar, and there
    the signal changes; the scar is graded (partial volume, patchy), never one constant value."""
    pop = draw_population(12, 0, seed=5)
    p = next(p for p in pop if p.lge)
    with_scar = simulate_patient(p, seed=5)
    without = simulate_patient(dataclasses.replace(p, lge=0), seed=5)
    assert with_scar.scar_slices and not without.scar_slices
    s = with_scar.scar_slices[0]
    frac, mask = with_scar.scar["ED"][s], with_scar.masks["ED"][s].astype(bool)
    inside = frac[mask & (frac > 0)]
    assert len(np.unique(np.round(inside, 2))) > 20 and inside.std() > 0.1  # graded, not a label
    assert np.array_equal(with_scar.masks["ED"], without.masks["ED"])  # scar does not change the anatomy
    for phase in ("ED", "ES"):
        a, b = with_scar.noiseless[phase].astype(float), without.noiseless[phase].astype(float)
        scar_any = with_scar.scar[phase] > 0
        changed = a != b
        # nothing outside the (partial-volume) scar neighbourhood changes: no marker elsewhere
        near = ndimage.binary_dilation(scar_any, iterations=2)
        assert not (changed & ~near).any()
        core = with_scar.scar[phase] > 0.5
        rel = np.abs(a[core] / b[core] - 1)
        assert rel.mean() > 0.01, rel.mean()  # visible to a pixel-level model ...
        assert rel.max() < 0.5  # ... but a modest relaxation change, not a bright marker
        img = with_scar.images[phase].astype(float)
        assert img[core].std() > 0  # never one constant value after noise


def test_same_seed_same_cohort_and_workers_do_not_matter(tmp_path):
    a = generate_cohort(tmp_path / "a", n_internal=2, n_external=1, seed=9)
    b = generate_cohort(tmp_path / "b", n_internal=2, n_external=1, seed=9, workers=2)
    assert a.read_bytes() == b.read_bytes()
    other = draw_population(2, 1, seed=10)
    assert [p.anat for p in other] != [p.anat for p in draw_population(2, 1, seed=9)]
    for rel in pd.read_csv(a).ed_image.tolist() + pd.read_csv(a).es_mask.tolist():
        assert np.array_equal(_read(a.parent / rel)[1], _read(b.parent / rel)[1])


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(CohortError, match="refusing to overwrite"):
        generate_cohort(foreign, n_internal=2, n_external=0)
    assert (foreign / "notes.txt").read_text() == "precious"
    (foreign / MARKER).write_text(json.dumps({"generator": "someone else"}))
    with pytest.raises(CohortError):
        generate_cohort(foreign, n_internal=2, n_external=0)
    file_path = tmp_path / "a_file"
    file_path.write_text("x")
    with pytest.raises(CohortError):
        generate_cohort(file_path, n_internal=2, n_external=0)


def test_regenerates_over_its_own_cohort_without_stale_files(tmp_path):
    out = tmp_path / "c"
    generate_cohort(out, n_internal=2, n_external=1, seed=1)
    generate_cohort(out, n_internal=1, n_external=0, seed=1)
    m = pd.read_csv(out / "manifest.csv")
    assert len(m) == 1
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{pid}_{ph}.nii.gz" for pid in m.patient_id for ph in ("ED", "ES"))


def test_interrupted_run_leaves_no_manifest(tmp_path, monkeypatch):
    out = tmp_path / "c"
    generate_cohort(out, n_internal=1, n_external=0, seed=1)
    calls = {"n": 0}
    real = synth._make_patient

    def dies_on_second(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(synth, "_make_patient", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(out, n_internal=2, n_external=0, seed=1)
    assert not (out / "manifest.csv").exists()
    assert json.loads((out / MARKER).read_text())["complete"] is False


def test_cohort_figure(cohort, tmp_path):
    out, _ = cohort
    png = render_cohort_figure(out, tmp_path / "fig.png", n_patients=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
