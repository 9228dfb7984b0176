"""The synthetic multi-centre HCM cine cohort, written in the cohort contract (docs/synthetic-cohort.md).

No real patient data ships with cinescar, so the default workflow runs on this cohort. It has to exercise
the real pipeline honestly: scar must change the pixels only through a physical signal model (bSSFP with
raised T1/T2, patchy, partial-volume), the label must follow the clinical associations the paper reports
(thicker, heavier ventricles scar more often) without being a lookup of one number, and the external
centre must differ (protocol, noise, artifacts) so that external performance can drop as in the paper.

Determinism: every patient has its own random streams keyed by (seed, cohort, index), so the result does
not depend on the order of rendering or on the number of worker processes. (Which centre a patient is
allocated to depends on the cohort size, so patient i of a 60-patient cohort is not patient i of a 759
one.)

Public API: `generate_cohort` (what the workflow calls), `draw_population` (labels, protocols and anatomy
without pixels -- cheap, for checking the label model at any size), `simulate_patient` (one patient's
arrays in memory, including the noiseless signal and scar truth), `draw_labels` / `label_logit`.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cinescar.cohort.contract import MANIFEST, MANIFEST_COLUMNS
from cinescar.cohort.synth_anatomy import (MYO_DENSITY_G_PER_ML, Anatomy, ScarPlan, analytic_metrics,
                                           background_layers, draw_anatomy, draw_scar, heart_crop,
                                           heart_extent, image_grid, lv_extent, lv_layers, lv_radii,
                                           papillary_layers, sample_field, scar_fraction, surround_layers,
                                           tissue_field)
from cinescar.cohort.synth_signal import (TISSUES, Acquisition, acquire, bias_field, bssfp_signal, centres,
                                          draw_acquisition, tissue_signals, to_dicom_range)
from cinescar.errors import CohortError
from cinescar.io import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

MARKER = "SYNTHETIC_COHORT.json"
GENERATOR = "cinescar.cohort.synth"
GENERATOR_VERSION = 1
COHORT_CODE = {"internal": 1, "external": 2}
OWN_FILE = re.compile(r"^SYN\d+_(ED|ES)(_scar)?\.nii\.gz$")


@dataclass(frozen=True)
class LabelModel:
    """Logistic scar model on standardised clinical variables (paper Table 1 / Table 2 directions).

    Internal: scar rises with maximal wall thickness and LV mass, is more frequent in men and with a
    lower ejection fraction. External: only LV mass differed significantly in the paper, so mass carries
    the association there.
    """

    mwt: float
    lvm: float
    male: float
    ef: float


LABEL_MODELS = {"internal": LabelModel(mwt=1.0, lvm=0.5, male=0.5, ef=-0.25),
                "external": LabelModel(mwt=0.2, lvm=1.0, male=0.2, ef=0.0)}
# reference means/SDs used for standardising (paper Table 1, all internal patients)
REF = {"MWT": (18.0, 5.0), "LVM": (158.0, 58.0), "EF": (0.68, 0.08)}


def label_logit(mwt, lvm, male, ef, cohort: str) -> np.ndarray:
    """Linear predictor (without intercept) of the label model."""
    m = LABEL_MODELS[cohort]
    return (m.mwt * (np.asarray(mwt) - REF["MWT"][0]) / REF["MWT"][1]
            + m.lvm * (np.asarray(lvm) - REF["LVM"][0]) / REF["LVM"][1]
            + m.male * np.asarray(male, dtype=float)
            + m.ef * (np.asarray(ef) - REF["EF"][0]) / REF["EF"][1])


def draw_labels(logit: np.ndarray, prevalence: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(prevalence * n) positives, drawn with odds exp(logit) (Gumbel top-k).

    Sampling without replacement with weights exp(logit) keeps the logistic association while fixing the
    count, so small cohorts have the intended prevalence and stratified splits never starve a class.
    """
    logit = np.asarray(logit, dtype=float)
    n = len(logit)
    k = int(round(prevalence * n))
    keys = logit + rng.gumbel(size=n)
    labels = np.zeros(n, dtype=np.int64)
    if k > 0:
        labels[np.argsort(-keys, kind="stable")[:k]] = 1
    return labels


@dataclass
class PatientDraw:
    """Everything decided about a patient before any pixel is rendered."""

    patient_id: str
    cohort: str
    index: int
    age: int
    sex: str
    height: float
    weight: float
    bmi: float
    acq: Acquisition
    anat: Anatomy
    z_slices: np.ndarray  # slice-centre heights below the base plane (mm)
    true_metrics: dict
    lge: int = 0


def _allocate(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Centre index per patient: proportional counts (largest remainder, >= 1 each when possible), shuffled."""
    w = np.asarray(weights, dtype=float) / np.sum(weights)
    counts = np.floor(w * n).astype(int)
    if n >= len(w):
        counts = np.maximum(counts, 1)
    while counts.sum() < n:
        counts[int(np.argmax(w * n - counts))] += 1
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    return rng.permutation(np.repeat(np.arange(len(w)), counts))


def _slice_positions(anat: Anatomy, acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """8-12 slices from just above/below the base to (about) the apex; sometimes one beyond it."""
    z0 = float(rng.uniform(-2.0, 6.0))
    reach = anat.length + anat.t_apex - z0
    n = int(np.clip(np.ceil(reach / acq.slice_spacing_mm) + (rng.random() < 0.3), 8, 12))
    return z0 + acq.slice_spacing_mm * np.arange(n)


def draw_population(n_internal: int = 60, n_external: int = 20, seed: int = 42,
                    prevalence_internal: float = 0.36, prevalence_external: float = 0.57,
                    external_artifact_fraction: float | None = None) -> list[PatientDraw]:
    """Draw demographics, protocol, anatomy and labels for every patient, without rendering images.

    Cheap (milliseconds per patient), so the label model can be checked at paper size or larger.
    """
    patients: list[PatientDraw] = []
    number = 0
    for cohort, n, prev in (("internal", n_internal, prevalence_internal),
                            ("external", n_external, prevalence_external)):
        if n == 0:
            continue
        code = COHORT_CODE[cohort]
        profiles = centres(cohort)
        pop_rng = np.random.default_rng([seed, code, 1_000_000])
        assignment = _allocate(n, np.array([p.weight for p in profiles]), pop_rng)
        block = []
        for i in range(n):
            number += 1
            rng = np.random.default_rng([seed, code, i])
            male = rng.random() < (0.66 if cohort == "internal" else 0.70)
            sex = "M" if male else "F"
            age = int(np.clip(round(rng.normal(50.0 if cohort == "internal" else 53.0, 15.0)), 18, 88))
            height = float(np.clip(rng.normal(176.0, 7.0) if male else rng.normal(163.0, 6.5), 145.0, 205.0))
            bmi = float(np.clip(rng.normal(28.0, 5.0), 17.0, 48.0))
            weight = bmi * (height / 100.0) ** 2
            profile = profiles[assignment[i]]
            rate = external_artifact_fraction if (cohort == "external" and external_artifact_fraction is not None) else None
            acq = draw_acquisition(profile, rng, artifact_rate=rate)
            anat = draw_anatomy(rng, sex, bmi, height)
            z = _slice_positions(anat, acq, rng)
            block.append(PatientDraw(f"SYN{number:04d}", cohort, i, age, sex, round(height, 1), round(weight, 1),
                                     round(weight / (height / 100.0) ** 2, 1), acq, anat, z, analytic_metrics(anat)))
        logit = label_logit([p.true_metrics["MWT"] for p in block], [p.true_metrics["LVM"] for p in block],
                            [p.sex == "M" for p in block], [p.anat.ef_target for p in block], cohort)
        labels = draw_labels(logit, prev, np.random.default_rng([seed, code, 2_000_000]))
        for p, y in zip(block, labels):
            p.lge = int(y)
        patients.extend(block)
    return patients


# ----------------------------------------------------------------------------------------------------
# rendering one patient

THROUGH_PLANE = (-1.0 / 3.0, 0.0, 1.0 / 3.0)  # sub-planes (fractions of slice thickness) for partial volume


@dataclass
class PatientImages:
    images: dict[str, np.ndarray]  # phase -> int16 (slices, rows, cols)
    masks: dict[str, np.ndarray]  # phase -> uint8
    scar: dict[str, np.ndarray]  # phase -> scar fraction (0-1) within the myocardium, float32
    noiseless: dict[str, np.ndarray]  # phase -> signal before bias/noise/artifacts (a.u.), float32
    cavity: dict[str, np.ndarray]  # phase -> bool LV cavity
    scar_slices: list[int]
    row: dict


def _paint(under: np.ndarray, frac: np.ndarray, value) -> np.ndarray:
    """Partial-volume compositing: a fraction `frac` of the voxel is the new tissue."""
    return under + frac * (np.float32(value) - under) if np.isscalar(value) else under + frac * (value - under)


def _myocardial_signal(p: PatientDraw, theta: np.ndarray, rho_c: np.ndarray, where: np.ndarray,
                       scar: ScarPlan | None, diffuse: list, acq: Acquisition, default: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Myocardial signal per slice (slices, h, w): healthy HCM myocardium mixed with scar.

    Healthy: native T1 rises with the local (ED) wall thickness -- diffuse change in hypertrophied HCM
    segments, in every patient, scar or not -- plus a mild tissue texture. Scar: T1 and T2 raised by the
    patient's increments, modulated pixel-wise, mixed in by the scar fraction (partial volume).
    Computed only where `where` (myocardium in some sub-plane); elsewhere `default`.
    """
    anat = p.anat
    pd = TISSUES["myocardium"].pd
    signal = np.full(rho_c.shape, default, dtype=np.float64)
    frac = np.zeros(rho_c.shape, dtype=np.float32)
    for s in range(len(p.z_slices)):
        idx = np.nonzero(where[s])
        if len(idx[0]) == 0:
            continue
        th, rh = theta[idx], rho_c[s][idx]
        extra = np.clip(anat.thickness(th, p.z_slices[s] / anat.length) - anat.t_base, 0.0, None) / 10.0
        t1 = anat.native_t1 * (1.0 + anat.t1_per_10mm * extra) * (1.0 + 0.015 * sample_field(diffuse[s][0], th, rh))
        t2 = anat.native_t2 * (1.0 + 0.5 * anat.t1_per_10mm * extra) * (1.0 + 0.02 * sample_field(diffuse[s][1], th, rh))
        sig = bssfp_signal(t1, t2, pd, acq.flip_deg, acq.tr_ms, acq.te_ms)
        if scar is not None and s in scar.slices:
            f = scar_fraction(scar, s, th, rh)
            g1 = np.clip(1.0 + 0.35 * sample_field(scar.dt1_field[s], th, rh), 0.3, 1.7)
            g2 = np.clip(1.0 + 0.35 * sample_field(scar.dt2_field[s], th, rh), 0.3, 1.7)
            s_scar = bssfp_signal(t1 * (1.0 + scar.dt1 * g1), t2 * (1.0 + scar.dt2 * g2), pd,
                                  acq.flip_deg, acq.tr_ms, acq.te_ms)
            sig = (1.0 - f) * sig + f * s_scar
            frac[s][idx] = f
        signal[s][idx] = sig
    return signal, frac


def simulate_patient(p: PatientDraw, seed: int) -> PatientImages:
    """Render both phases of one patient: noiseless signal, acquisition, masks, scar truth, measurements."""
    acq, anat = p.acq, p.anat
    code = COHORT_CODE[p.cohort]
    rng_scar = np.random.default_rng([seed, code, p.index, 2])
    rng_tex = np.random.default_rng([seed, code, p.index, 3])
    rng_acq = np.random.default_rng([seed, code, p.index, 4])
    n = len(p.z_slices)
    full = image_grid(anat, acq.rows, acq.cols, acq.pixel_mm)
    hc = heart_crop(full, heart_extent(anat))
    lc = heart_crop(full, lv_extent(anat))
    sig = tissue_signals(acq)
    s_myo_ref = float(bssfp_signal(1000.0, 45.0, TISSUES["myocardium"].pd, acq.flip_deg, acq.tr_ms, acq.te_ms))
    s_blood_ref = sig["blood"] / acq.blood_flow

    bg = np.zeros((n, acq.rows, acq.cols), dtype=np.float32)
    for name, frac in background_layers(anat, full, p.z_slices):
        bg = _paint(bg, frac, sig[name])
    scar = draw_scar(rng_scar, anat, p.z_slices) if p.lge else None
    diffuse = [(tissue_field(rng_tex), tissue_field(rng_tex)) for _ in range(n)]
    inflow = 1.0 + 0.06 * (1.0 - np.clip(p.z_slices / anat.length, 0.0, 1.0)) + rng_tex.normal(0.0, 0.02, n)
    blood = (sig["blood"] * inflow)[:, None, None].astype(np.float32)
    bias = bias_field(full.x + anat.centre_x, full.y + anat.centre_y, acq.bias_coef)
    noise_sd = s_myo_ref / acq.snr
    k = len(THROUGH_PLANE)
    offsets = np.array(THROUGH_PLANE) * acq.slice_thickness_mm
    shape = (n, k) + lc.x.shape
    values = {"fat": sig["fat"], "rv_wall": s_myo_ref, "rv_blood": blood}

    out = PatientImages({}, {}, {}, {}, {}, scar.slices if scar else [], {})
    for phase in ("ED", "ES"):
        signal = bg.copy()
        heart = signal[:, hc.rows, hc.cols]
        for name, frac in surround_layers(anat, hc, p.z_slices, phase):
            heart = _paint(heart, frac, values[name])
        signal[:, hc.rows, hc.cols] = heart
        lv = lv_layers(anat, lc, p.z_slices, offsets, phase)
        present = lv.present[:, None, None]
        myo_planes = lv.epi * (1.0 - lv.endo) * present
        myo_any = (myo_planes > 0).reshape(shape).any(axis=1)
        s_myo, f_scar = _myocardial_signal(p, lv.theta, lv.rho[1::k], myo_any, scar, diffuse, acq, s_myo_ref)
        rep = lambda a: np.repeat(a, k, axis=0)  # noqa: E731 - slice -> its sub-planes
        s = rep(signal[:, lc.rows, lc.cols])
        s = _paint(s, lv.epi, rep(s_myo.astype(np.float32)))
        s = _paint(s, lv.endo, rep(blood))
        s = s.reshape(shape).mean(axis=1)
        for pap in papillary_layers(anat, lc, p.z_slices, phase):
            s = _paint(s, pap, s_myo_ref)
        signal[:, lc.rows, lc.cols] = s
        myo = myo_planes.reshape(shape).mean(axis=1)
        cav = (lv.endo * present).reshape(shape).mean(axis=1)
        mask = np.zeros((n, acq.rows, acq.cols), dtype=np.uint8)
        mask[:, lc.rows, lc.cols] = myo >= 0.5
        scar_full = np.zeros((n, acq.rows, acq.cols), dtype=np.float32)
        scar_full[:, lc.rows, lc.cols] = f_scar * (myo >= 0.5)
        cavity = np.zeros((n, acq.rows, acq.cols), dtype=bool)
        cavity[:, lc.rows, lc.cols] = cav >= 0.5
        sel = None
        if acq.artifact:
            sel = rng_acq.random(n) < 0.6
            sel[int(rng_acq.integers(0, n))] = True
        mag = acquire(signal, bias, noise_sd, acq, full.x, full.y, rng_acq, sel)
        out.images[phase] = to_dicom_range(mag, acq.scale / s_blood_ref)
        out.masks[phase] = mask
        out.scar[phase] = scar_full
        out.noiseless[phase] = signal
        out.cavity[phase] = cavity

    if scar is not None:  # slices where the reader would see scar: >= 10 mm^2 of it inside the contour
        area = out.scar["ED"].sum(axis=(1, 2)) * acq.pixel_mm**2
        out.scar_slices = [int(s) for s in scar.slices if area[s] >= 10.0]
        if not out.scar_slices:  # patchiness erased every patch: keep the largest (still LGE+)
            out.scar_slices = [int(scar.slices[int(np.argmax(area[scar.slices]))])]
    out.row = _clinical_row(p, out)
    return out


def _clinical_row(p: PatientDraw, imgs: PatientImages) -> dict:
    """Clinical columns measured on the rendered stack, as a reader would (Simpson's discs)."""
    acq, anat = p.acq, p.anat
    voxel_ml = acq.pixel_mm**2 * acq.slice_spacing_mm / 1000.0
    edv = float(imgs.cavity["ED"].sum() * voxel_ml)
    esv = float(imgs.cavity["ES"].sum() * voxel_ml)
    sv = edv - esv
    theta = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    z = p.z_slices[(p.z_slices >= 0.0) & (p.z_slices <= 0.8 * anat.length)]
    endo, epi = lv_radii(anat, theta[None], z[:, None], "ED")
    mwt = float((epi - endo).max()) if len(z) else float("nan")
    return {
        "age": p.age, "sex": p.sex, "height": p.height, "weight": p.weight, "BMI": p.bmi,
        "LVEDV": round(edv, 1), "LVESV": round(esv, 1), "SV": round(sv, 1),
        "LVEF": round(100.0 * sv / edv, 1) if edv > 0 else float("nan"),
        "CO": round(sv * anat.heart_rate / 1000.0, 2),
        "LVM": round(float(imgs.masks["ED"].sum() * voxel_ml * MYO_DENSITY_G_PER_ML), 1),
        "MWT": round(mwt, 1),
    }


# ----------------------------------------------------------------------------------------------------
# writing

def _write(arr: np.ndarray, spacing: tuple[float, float, float], path: Path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), useCompression=True, compressionLevel=1)


def _make_patient(p: PatientDraw, out_dir: Path, seed: int, write_truth: bool) -> tuple[dict, dict]:
    """Render and write one patient; return its manifest row and its truth row."""
    imgs = simulate_patient(p, seed)
    acq = p.acq
    spacing = (acq.pixel_mm, acq.pixel_mm, acq.slice_spacing_mm)
    row = {"patient_id": p.patient_id, "center": acq.centre, "vendor": acq.vendor, "cohort": p.cohort,
           "lge": p.lge}
    for phase in ("ED", "ES"):
        img_rel, mask_rel = f"images/{p.patient_id}_{phase}.nii.gz", f"masks/{p.patient_id}_{phase}.nii.gz"
        _write(imgs.images[phase], spacing, out_dir / img_rel)
        _write(imgs.masks[phase], spacing, out_dir / mask_rel)
        row[f"{phase.lower()}_image"], row[f"{phase.lower()}_mask"] = img_rel, mask_rel
        if write_truth and p.lge:
            pct = np.rint(100.0 * imgs.scar[phase]).astype(np.uint8)
            _write(pct, spacing, out_dir / f"truth/{p.patient_id}_{phase}_scar.nii.gz")
    row["scar_slices"] = ";".join(str(s) for s in imgs.scar_slices) if p.lge else ""
    row.update(imgs.row)
    truth = {"patient_id": p.patient_id, "phenotype": p.anat.phenotype, "true_MWT": round(p.true_metrics["MWT"], 2),
             "true_LVM": round(p.true_metrics["LVM"], 2), "ef_target": round(p.anat.ef_target, 3),
             "heart_rate": round(p.anat.heart_rate, 1), "flip_deg": acq.flip_deg, "tr_ms": acq.tr_ms,
             "te_ms": acq.te_ms, "pixel_mm": acq.pixel_mm, "rows": acq.rows, "cols": acq.cols,
             "slice_thickness_mm": acq.slice_thickness_mm, "slice_spacing_mm": acq.slice_spacing_mm,
             "snr": round(acq.snr, 2), "scale": round(acq.scale, 1), "artifact": acq.artifact,
             "n_slices": len(p.z_slices)}
    return row, truth


def _marker_ok(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == GENERATOR


def _write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _prepare_folder(out_dir: Path) -> None:
    """Refuse a non-empty folder that is not ours; in one of ours, remove the previous run's files first.

    manifest.csv goes first, so a run interrupted from here on never leaves a manifest that looks complete.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CohortError("cannot write a synthetic cohort: the path exists and is not a folder", path=out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not _marker_ok(out_dir / MARKER):
            raise CohortError(f"refusing to overwrite a non-empty folder that is not a synthetic cohort "
                              f"(no valid {MARKER}); choose an empty or new folder", path=out_dir)
        (out_dir / MANIFEST).unlink(missing_ok=True)
        for sub in ("images", "masks", "truth"):
            folder = out_dir / sub
            if folder.is_dir():
                for f in folder.iterdir():
                    if f.is_file() and (OWN_FILE.match(f.name) or f.name == "patients.csv"):
                        f.unlink()
    for sub in ("images", "masks", "truth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)


def generate_cohort(out_dir: Path, n_internal: int = 60, n_external: int = 20, seed: int = 42,
                    prevalence_internal: float = 0.36, prevalence_external: float = 0.57, *,
                    external_artifact_fraction: float | None = None, write_truth: bool = True,
                    workers: int = 1) -> Path:
    """Generate the synthetic cohort into `out_dir` and return the path of its manifest.csv.

    Same arguments -> byte-identical manifest and identical image arrays (workers does not matter).
    `truth/` holds scar fractions (percent, uint8) of LGE+ patients and a per-patient parameter table for
    figures and checks; it is not part of the cohort contract and no model may read it.
    """
    out_dir = Path(out_dir)
    if n_internal < 1 or n_external < 0:
        raise CohortError(f"need n_internal >= 1 and n_external >= 0 (got {n_internal}, {n_external})")
    for name, prev in (("prevalence_internal", prevalence_internal), ("prevalence_external", prevalence_external)):
        if not 0.0 <= prev <= 1.0:
            raise CohortError(f"{name} must be within [0, 1] (got {prev})")
    params = {"n_internal": int(n_internal), "n_external": int(n_external), "seed": int(seed),
              "prevalence_internal": float(prevalence_internal), "prevalence_external": float(prevalence_external),
              "external_artifact_fraction": external_artifact_fraction, "write_truth": bool(write_truth)}
    _prepare_folder(out_dir)
    marker = {"generator": GENERATOR, "version": GENERATOR_VERSION, "parameters": params, "complete": False,
              "note": "Synthetic data, no patient information. truth/ is simulation ground truth, "
                      "not part of the cohort contract: models must never read it."}
    _write_json_atomic(out_dir / MARKER, marker)

    patients = draw_population(n_internal, n_external, seed, prevalence_internal, prevalence_external,
                               external_artifact_fraction)
    log.info("synthetic cohort: rendering %d patients into %s", len(patients), out_dir)
    args = [(p, out_dir, seed, write_truth) for p in patients]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_make_patient, *zip(*args)))
    else:
        results = [_make_patient(*a) for a in args]
    rows = [r for r, _ in results]
    if write_truth:
        pd.DataFrame([t for _, t in results]).to_csv(out_dir / "truth" / "patients.csv", index=False,
                                                     lineterminator="\n")
    manifest = pd.DataFrame(rows)[MANIFEST_COLUMNS]
    path = out_dir / MANIFEST
    atomic_write(path, lambda tmp: manifest.to_csv(tmp, index=False, lineterminator="\n"))  # last and whole
    marker["complete"] = True
    marker["counts"] = {c: {"patients": int((manifest.cohort == c).sum()), "lge_pos": int(manifest.lge[manifest.cohort == c].sum())}
                        for c in ("internal", "external")}
    _write_json_atomic(out_dir / MARKER, marker)
    log.info("synthetic cohort written: %s", path)
    return path


def synth_api(out: str | Path, *, config: str | Path | None = None, patients: int | None = None,
              external: int | None = None, seed: int | None = None,
              figure: str | Path | None = None) -> tuple[Path, Path | None]:
    """`cinescar synth` as a function: write the synthetic cohort with the config's `synthetic` section (default
    config/config.yaml), `patients`/`external`/`seed` overriding it; return the manifest's path and, when
    `figure` is given, that of the rendered figure of a few patients."""
    from cinescar.config import load_config

    cfg = load_config(config)
    syn = dict(cfg["synthetic"])
    n_internal, n_external = int(syn.pop("internal_patients")), int(syn.pop("external_patients"))
    manifest = generate_cohort(Path(out), n_internal=patients or n_internal,
                               n_external=external if external is not None else n_external,
                               seed=seed if seed is not None else int(cfg["seed"]), **syn)
    if not figure:
        return manifest, None
    from cinescar.cohort.figure import render_cohort_figure

    return manifest, render_cohort_figure(Path(out), Path(figure))


__all__ = ["generate_cohort", "synth_api", "draw_population", "draw_labels", "label_logit", "simulate_patient",
           "PatientDraw", "PatientImages", "MARKER", "LABEL_MODELS"]
