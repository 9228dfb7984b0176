"""Screen one new exam with a model bundle: exam files in, per-model probability and decision out.

The path an exam takes is the workflow's own, step for step, so that a patient screened here gets the
probabilities the study reported for it: the cohort checks (`check_exam`, the same errors as `cinescar
validate`), preprocessing (`preprocess_exam`), pyradiomics with the study's parameter file, the CNN on the
3-channel 128 x 128 crop, each model's `predict`, the patient probability as the maximum over the images and
the decision at the bundle's validation cut-off (`>=`, as in `cinescar.evaluation.screening`).

Two things differ, both for speed, neither for the numbers:
- pyradiomics computes only the image types and features the two models read
  (`cinescar.radiomics.restricted`; scaling and imputation are column-wise, so the other features cannot
  change a prediction); under `failure_policy: exclude` it computes everything, as the workflow does.
  Extracting a subset gives bit-identical values.
- The CNN's input crop and forward pass come from `cinescar.dl.inference`, the DL stage's own functions
  without Lightning or MONAI (which take ~5 s to import).

Each file of the exam is read once: the checks fill a read cache that preprocessing reuses, and the exam's
statistics for the out-of-distribution check are the fingerprint preprocessing measured
(`cinescar.preprocessing.fingerprint`).

An exam far from the training data (pixel spacing, matrix size or raw intensity range beyond what trained
the models, by more than `bundle.ood_tolerance`) still gets its numbers, but the result carries a warning.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cinescar.cohort.contract import FILE_COLUMNS, MASK_COLUMNS, PATIENT_ID_PATTERN
from cinescar.errors import CinescarError, CohortError
from cinescar.screening.bundle import MODELS, Bundle, load_bundle
from cinescar.screening.exam import Exam  # re-exported: screen.Exam is the public name
from cinescar.screening.ood import distribution_warnings, exam_statistics  # noqa: F401 (re-exported)
from cinescar.screening_rule import called_positive, patient_probability

log = logging.getLogger(__name__)

RESULT_FORMAT = "cinescar-screening-result/2"  # 2: mask_source and segmentation (QC flags, LV volumes)
POSITIVE = "LGE likely"
NEGATIVE = "LGE unlikely — contrast may be reconsidered"
INDETERMINATE = "no decision — predicted masks failed quality control"
EXAM_NAMES = {"ed_image": "ED", "ed_mask": "ED_mask", "es_image": "ES", "es_mask": "ES_mask"}
"""File (or DICOM folder) name stems of an exam folder, matched case-insensitively, any extension."""
DATA_SUFFIXES = (".raw", ".zraw", ".img")
"""Pixel-data halves of header/data pairs (ED.mhd + ED.raw): the header is the image, these are skipped."""
INPUT_COLUMNS = ["patient_id", *FILE_COLUMNS]
"""One exam as a table row (the MLflow model's input): the cohort manifest's patient and file columns."""
OUTPUT_COLUMNS = ["patient_id", "n_images", *[f"{m}_{what}" for m in MODELS for what in ("probability", "decision")],
                  "warnings"]  # fmt: skip
"""One screening result as a table row (the MLflow model's output, `result_row`)."""


def _stem(path: Path) -> str:
    return path.name.split(".", 1)[0].lower()


def folder_patient_id(folder: Path, patient_id: str | None = None) -> str:
    """The ID an exam folder is reported under: `patient_id` (checked), else the folder's name, else 'exam'."""
    from cinescar.cohort.contract import checked_patient_id

    if patient_id is not None:
        return checked_patient_id(patient_id, folder)  # it names output files: refused, not replaced silently
    return folder.name if PATIENT_ID_PATTERN.match(folder.name) else "exam"


def exam_from_folder(folder: str | Path, patient_id: str | None = None, masks_optional: bool = True) -> Exam:
    """An exam folder: `ED`, `ED_mask`, `ES`, `ES_mask` as image files of any SimpleITK format
    (`ED.nii.gz`, `ED_mask.mha`, ...) or as folders holding one DICOM series each (`ED/`, `ED_mask/`, ...).
    The masks may be left out (issue 22): the bundle's segmenter then predicts them."""
    folder = Path(folder)
    pid = folder_patient_id(folder, patient_id)
    if not folder.is_dir():
        raise CohortError("exam folder does not exist", pid, folder)
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")
               and not (p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))]  # fmt: skip
    files: dict[str, Path] = {}
    for col, stem in EXAM_NAMES.items():
        hits = sorted(p for p in entries if _stem(p) == stem.lower())
        if not hits and masks_optional and col in MASK_COLUMNS:
            continue
        if not hits:
            raise CohortError(f"no {stem} found: expected a file {stem}.<ext> (e.g. {stem}.nii.gz, any "
                              f"SimpleITK format) or a DICOM series folder {stem}/", pid, folder)
        if len(hits) > 1:
            raise CohortError(f"several candidates for {stem}: {', '.join(p.name for p in hits)}", pid, folder)
        files[col] = hits[0]
    return Exam(patient_id=pid, files=files, source=folder)


def exam_from_manifest(manifest: str | Path, patient_id: str, allow_outside: bool = False,
                       masks_optional: bool = True) -> Exam:
    """One patient of a cohort's manifest.csv (paths relative to the cohort folder, and inside it unless
    `allow_outside`, as in `cinescar validate`)."""
    from cinescar.cohort.contract import checked_patient_id, has_path, read_manifest, resolve_inside

    manifest = Path(manifest)
    cohort_dir = manifest.parent if manifest.name.endswith(".csv") else manifest
    patient_id = checked_patient_id(patient_id, cohort_dir / "manifest.csv")
    table = read_manifest(cohort_dir)
    rows = table[table["patient_id"].astype(str) == str(patient_id)]
    if rows.empty:
        raise CohortError("patient is not in the manifest", patient_id, cohort_dir / "manifest.csv")
    row = rows.iloc[0]
    present = [c for c in FILE_COLUMNS if c in row.index and has_path(row[c])]
    missing = [c for c in FILE_COLUMNS if c not in present and not (masks_optional and c in MASK_COLUMNS)]
    if missing:
        raise CohortError(f"empty {', '.join(missing)} path", patient_id, cohort_dir / "manifest.csv")
    files = {c: resolve_inside(cohort_dir, row[c], patient_id, allow_outside) for c in present}
    return Exam(patient_id=str(patient_id), files=files, source=cohort_dir / "manifest.csv")


def check(exam: Exam, volumes: dict | None = None, target_spacing_mm: float = 1.0) -> list[str]:
    """The cohort validation's exam checks; every problem found is reported, naming patient and file.
    Returns the plausibility warnings (an unusual but possible exam), which go into the result.

    `volumes` is the read cache (`cinescar.cohort.contract.read_volume`) that preprocessing then reuses.
    """
    from cinescar.cohort.contract import checked_patient_id
    from cinescar.cohort.validate import check_exam

    checked_patient_id(exam.patient_id, exam.source)  # it names the Grad-CAM files
    warnings: list[str] = []
    problems, _ = check_exam(exam.patient_id, exam.files, volumes=volumes, warnings=warnings,
                             target_spacing_mm=target_spacing_mm)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise CohortError(f"{len(problems)} problems: " + "; ".join(str(p) for p in problems),
                          exam.patient_id, problems[0].path)
    return warnings


# ----------------------------------------------------------------------------------------------- radiomics


def model_feature_names(bundle: Bundle) -> list[str]:
    """The radiomics columns the bundle's fold models read (Radiomics and DL-Radiomics, DL columns left out), in
    first-seen order: the table every exam's features are laid out in."""
    from cinescar.fusion.model import DL_COLUMN

    return list(dict.fromkeys([*(n for m in bundle.radiomics.values() for n in m.feature_names),
                               *(n for m in bundle.fusion.values() for n in m.feature_names
                                 if not DL_COLUMN.match(n))]))


def radiomics_features(extractor, images: np.ndarray, masks: np.ndarray, image_ids: list[str],
                       feature_names: list[str]) -> tuple[pd.DataFrame, list[str]]:  # fmt: skip
    """Features of each image in the models' column order (NaN where not computed or failed); failures."""
    from cinescar.radiomics.extract import extract_image

    values = np.full((len(image_ids), len(feature_names)), np.nan)
    position = {n: j for j, n in enumerate(feature_names)}
    failures = []
    for i, image_id in enumerate(image_ids):
        try:
            feats = extract_image(extractor, images[i], masks[i])
        except Exception as exc:  # noqa: BLE001 - pyradiomics raises anything; the image is reported, not fatal
            failures.append(f"radiomics extraction failed on image {image_id} ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]})")
            continue
        for name, value in feats.items():
            j = position.get(name)
            if j is not None:
                values[i, j] = value if np.isfinite(value) else np.nan
    table = pd.DataFrame(values, columns=feature_names)
    table.insert(0, "image_id", image_ids)
    return table, failures


# ----------------------------------------------------------------------------------------------- screening


def _decision(prob: float | None, cutoff: float) -> tuple[str, bool | None]:
    if prob is None:
        return "not available", None
    positive = bool(called_positive(prob, cutoff))
    return (POSITIVE if positive else NEGATIVE), positive


def screen_exam(bundle: Bundle, exam: Exam, gradcam_dir: str | Path | None = None,
                gradcam_images: int | None = None, volumes: dict | None = None,
                segmentations: dict | None = None, details: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Screen one exam; returns the JSON-ready result (docs/screening.md, "The result").

    Raises CohortError for an exam that cohort validation would reject. Grad-CAM overlays of the images with
    the highest DL probability are written to `gradcam_dir` when given. `volumes` may hold images already in
    memory under their `exam.files` keys (a DICOM cine's ED/ES, `dicom_exam.exam_inputs`); `segmentations`,
    when given, receives each predicted phase's `StackSegmentation` (for a DICOM SEG); `details`, when given,
    receives the per-image radiomics features the models read under "radiomics" (the deployment case compares
    them between manual and predicted masks, `screening/deployment.py`).
    """
    from cinescar.dl.features import features_table
    from cinescar.dl.inference import predict, three_channels
    from cinescar.fusion.model import fuse_features
    from cinescar.preprocessing.store import preprocess_exam
    from cinescar.radiomics.model import predict_images

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    volumes = dict(volumes or {})  # each file read once: by the checks, reused by preprocessing
    plausibility_warnings = check(exam, volumes, bundle.preprocess_settings.spacing_mm)
    timing["checks"] = time.perf_counter() - t0

    t = time.perf_counter()
    from cinescar.screening.exam_masks import segment_exam

    files = dict(exam.files)  # predicted masks join the exam's files (in the read cache only)
    seg_meta = bundle.meta.get("segmentation") or {}
    segmentation = segment_exam(bundle.segmenter, exam.patient_id, files, volumes, seg_meta.get("qc", {}),
                                stacks=segmentations)
    exam = Exam(exam.patient_id, files, exam.source)
    timing["segmentation"] = time.perf_counter() - t

    t = time.perf_counter()
    images, masks, rows = preprocess_exam(exam.patient_id, exam.files, bundle.preprocess_settings,
                                          volumes=volumes)
    volumes.clear()
    warnings_out = plausibility_warnings + distribution_warnings(
        exam_statistics(rows), bundle.meta["training_ranges"], float(bundle.meta.get("ood_tolerance", 0.1)))
    timing["preprocessing"] = time.perf_counter() - t
    image_ids = rows["image_id"].astype(str).tolist()

    t = time.perf_counter()
    rad_features, failures = radiomics_features(bundle.extractor(), images, masks, image_ids,
                                                model_feature_names(bundle))
    policy = ("left out of the Radiomics and DL-Radiomics models (failure_policy: exclude)"
              if bundle.radiomics_features_needed() is None else "features imputed with the training medians")
    warnings_out += [f"{f}; {policy}, as in the workflow" for f in failures]
    timing["radiomics"] = time.perf_counter() - t
    if details is not None:
        details["radiomics"] = rad_features

    t = time.perf_counter()
    inputs: dict[int, np.ndarray] = {}  # by CNN input size
    by_fold: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # CNN f: (DL probabilities, DL features)
    for fold in sorted({*bundle.folds("dl"), *bundle.folds("fusion")}):
        size = int(bundle.cnns[fold].hparams_dict.get("input_size", 128))
        if size not in inputs:
            inputs[size] = three_channels(images, masks, size)  # the DL stage's own input, exactly
        by_fold[fold] = predict(bundle.cnns[fold], inputs[size], 64, "cpu")  # eval mode, as in training
    timing["cnn"] = time.perf_counter() - t

    # per model and fold model: image probabilities (fold f's fused model reads CNN f's DL features)
    t = time.perf_counter()
    rad_table = rad_features.set_index("image_id")
    fold_probs: dict[str, dict[int, np.ndarray]] = {
        "radiomics": {f: predict_images(m, rad_table) for f, m in bundle.radiomics.items()},
        "dl": {f: by_fold[f][0].astype(np.float64) for f in bundle.folds("dl")},
        "fusion": {},
    }
    for f, m in bundle.fusion.items():
        fused = fuse_features(rad_features, features_table(image_ids, by_fold[f][1]), "exam radiomics features",
                              "exam DL features").loc[image_ids]  # fmt: skip
        fold_probs["fusion"][f] = m.predict(fused)
    # shown per image: the mean over the fold models; the decision uses the mean of the fold models' maxima
    probs = {m: np.mean([np.asarray(p, dtype=np.float64) for p in fold_probs[m].values()], axis=0) for m in MODELS}

    models_out: dict[str, dict] = {}
    for model in MODELS:
        p = np.asarray(probs[model], dtype=np.float64)
        ok = np.isfinite(p)
        if not ok.any():
            warnings_out.append(f"{bundle.models[model]['label']}: no image could be scored (failed radiomics "
                                "under failure_policy=exclude); no decision")
        per_fold = {f: patient_probability(fp) for f, fp in fold_probs[model].items()}
        prob = None if any(v is None for v in per_fold.values()) else float(np.mean(list(per_fold.values())))
        cutoff = bundle.cutoff(model)
        decision, positive = _decision(prob, cutoff)
        info = bundle.models[model]
        models_out[model] = {
            "label": info["label"], "fold": int(info["fold"]), "folds": bundle.folds(model),
            "fold_probabilities": {str(f): v for f, v in per_fold.items()}, "probability": prob, "cutoff": cutoff,
            "operating_point": info.get("operating_point"), "optimistic": bool(info.get("optimistic", False)),
            "decision": decision, "lge_likely": positive,
            "validation_sensitivity": info["validation_sensitivity"],
            "target_sensitivity": bundle.meta["screening"]["target_sensitivity"],
            "driving_image": image_ids[int(np.nanargmax(np.where(ok, p, -np.inf)))] if ok.any() else None,
            "n_images_scored": int(ok.sum()),
        }
    if segmentation["qc_flags"]:
        # never silently wrong: a segmentation no heart looks like gives no confident decision
        why = ", ".join(segmentation["qc_flags"])
        warnings_out.append(f"predicted masks flagged by quality control ({why}): no decision; check or draw the "
                            "masks (cinescar segment writes them) and screen again")
        for out in models_out.values():
            out["decision"], out["lge_likely"] = INDETERMINATE, None
    per_image = [{"image_id": iid, "phase": str(r.phase), "slice": int(r.slice),
                  **{m: (float(probs[m][i]) if np.isfinite(probs[m][i]) else None) for m in MODELS}}
                 for i, (iid, r) in enumerate(zip(image_ids, rows.itertuples(index=False)))]  # fmt: skip
    timing["models"] = time.perf_counter() - t

    gradcam: list[dict] = []
    if gradcam_dir is not None:
        t = time.perf_counter()
        n = int(gradcam_images if gradcam_images is not None else bundle.meta["gradcam"]["n_images"])
        dl_inputs = inputs[int(bundle.cnn("dl").hparams_dict.get("input_size", 128))]
        gradcam = _gradcam(bundle, dl_inputs, probs["dl"], image_ids, Path(gradcam_dir), n)
        timing["gradcam"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - t0
    for w in warnings_out:
        log.warning("patient %s: %s", exam.patient_id, w)
    return {
        "format": RESULT_FORMAT,
        "patient_id": exam.patient_id,
        "exam": {c: str(p) for c, p in exam.files.items()},
        "mask_source": segmentation["mask_source"],
        "segmentation": {"qc_flags": segmentation["qc_flags"], "lv": segmentation["lv"]},
        "bundle": bundle.describe(),
        "screening_rule": (f"patient probability = mean over the model's fold models of each one's maximum over "
                           f"the exam's {len(image_ids)} images; '{POSITIVE}' when it is >= the model's cut-off, "
                           "chosen on validation patients (pooled out of fold by default) for a sensitivity >= "
                           f"{bundle.meta['screening']['target_sensitivity']:g}"),
        "models": models_out,
        "images": per_image,
        "gradcam": gradcam,
        "warnings": warnings_out,
        "timing_s": {k: round(v, 4) for k, v in timing.items()},
    }


def _gradcam(bundle: Bundle, inputs: np.ndarray, dl_probs: np.ndarray, image_ids: list[str],
             out_dir: Path, n: int) -> list[dict]:  # fmt: skip
    """Grad-CAM overlays (the DL stage's renderer) of the `n` images with the highest DL probability.

    `dl_probs` is the mean over the DL fold models; the map is that of the first fold model's CNN (one map per
    image; maps of different CNNs are not averaged)."""
    if n <= 0:
        return []
    from cinescar.dl.gradcam import gradcam_overlay

    from cinescar.cohort.contract import inside

    gc = bundle.meta["gradcam"]
    order = sorted(range(len(image_ids)), key=lambda i: (-float(dl_probs[i]), image_ids[i]))[:n]
    out_dir.mkdir(parents=True, exist_ok=True)
    patient = image_ids[0].rsplit("_", 2)[0] if image_ids else None
    for stale in out_dir.glob(f"{patient}_E[DS]_*_gradcam.png") if patient else []:
        stale.unlink()  # this patient's overlays of an earlier screening; other patients' stay
    out = []
    for i in order:
        png = inside(out_dir, f"{image_ids[i]}_gradcam.png", patient, "Grad-CAM folder")
        gradcam_overlay(bundle.cnn("dl"), inputs[i], None, png, layer=gc["layer"], alpha=float(gc["alpha"]),
                        title=f"{image_ids[i]}  P(scar)={float(dl_probs[i]):.2f}")
        out.append({"image_id": image_ids[i], "dl_probability": float(dl_probs[i]), "png": str(png)})
    return out


def result_row(result: dict[str, Any]) -> dict[str, Any]:
    """A screening result as one row of `OUTPUT_COLUMNS` (probability, decision per model; joined warnings)."""
    row: dict[str, Any] = {"patient_id": result["patient_id"], "n_images": len(result["images"])}
    for m in MODELS:
        row[f"{m}_probability"] = result["models"][m]["probability"]
        row[f"{m}_decision"] = result["models"][m]["decision"]
    row["warnings"] = "; ".join(result["warnings"])
    return row


def result_json(result: dict[str, Any]) -> str:
    """The result as `cinescar screen` prints it and writes it to --out."""
    return json.dumps(result, indent=2, ensure_ascii=False)


def screen_api(bundle: str | Path | Bundle, exam: str | Path | None = None, *, manifest: str | Path | None = None,
               patient: str | None = None, patient_id: str | None = None, out: str | Path | None = None,
               gradcam_dir: str | Path | None = None, gradcam_images: int | None = None, no_gradcam: bool = False,
               bundle_sha256: str | None = None, allow_outside_paths: bool = False,
               phases: str | dict[str, int] | None = None, series: str | list[int] | None = None,
               dicom_out: str | Path | None = None) -> dict[str, Any]:
    """`cinescar screen` as a function: screen the exam folder `exam`, or patient `patient` of `manifest`, with
    the bundle folder `bundle`; return the result and write it as JSON to `out` when given.

    An exam folder that is a DICOM cine (`dicom_exam.is_dicom_cine_folder`) is read with `cinescar.dicom`
    (`phases` "ed=I,es=J" and `series` as in `import-dicom`); the result then records `phase_selection`, and
    `dicom_out` receives a DICOM SEG per phase and a Secondary Capture of the result.
    Grad-CAM overlays go to `gradcam_dir`, else beside `out` (`<out>_gradcam/`), never with `no_gradcam`.
    `bundle` may also be a `Bundle` already loaded (`cinescar.screening.batch`: many exams, one start-up).
    """
    from cinescar.screening import dicom_exam as dx

    if (exam is None) == (manifest is None):
        raise CinescarError("give either an exam folder or --manifest with --patient")
    if manifest is not None and not patient:
        raise CinescarError("--manifest needs --patient ID")
    is_cine = exam is not None and dx.is_dicom_cine_folder(exam)
    if not is_cine and (phases or series or dicom_out):
        raise CinescarError("--phases, --series and --dicom-out apply to a DICOM cine exam folder (DICOM files, no "
                            "ED/ES entries) only")
    dicom, preloaded = None, None
    if is_cine:
        the_bundle = _loaded(bundle, bundle_sha256)
        pid = folder_patient_id(Path(exam), patient_id)
        dicom = dx.read_dicom_exam(exam, pid, the_bundle.segmenter, phases=_phases(phases),
                                   series=_series(series))
        the_exam, preloaded = dx.exam_inputs(dicom, pid, Path(exam))
    else:
        the_exam = (exam_from_manifest(manifest, patient, allow_outside_paths) if manifest
                    else exam_from_folder(exam, patient_id))  # fmt: skip
        the_bundle = _loaded(bundle, bundle_sha256)
    cam_dir = None
    if not no_gradcam:
        if gradcam_dir:
            cam_dir = Path(gradcam_dir)
        elif out:
            cam_dir = Path(out).with_name(f"{Path(out).stem}_gradcam")
    stacks: dict = {}
    result = screen_exam(the_bundle, the_exam, gradcam_dir=cam_dir, gradcam_images=gradcam_images,
                         volumes=preloaded, segmentations=stacks)
    if dicom is not None:
        result["exam"] = {"dicom_folder": str(exam), **result["exam"]}
        result["phase_selection"] = dicom.selection.to_dict()
        result["warnings"] = [*dicom.cine.warnings, *result["warnings"]]
        if dicom_out:
            result["dicom_out"] = dx.write_dicom_outputs(dicom, stacks, result, dicom_out)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(result_json(result) + "\n", encoding="utf-8")
    return result


def _loaded(bundle: str | Path | Bundle, digest: str | None) -> Bundle:
    """A bundle folder verified and loaded; a `Bundle` already loaded as it is."""
    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle, expected_digest=digest)


def _phases(value: str | dict[str, int] | None) -> dict[str, int] | None:
    from cinescar.dicom.phases import parse_phases

    return parse_phases(value) if isinstance(value, str) else value


def _series(value: str | list[int] | None) -> list[int] | None:
    from cinescar.dicom.importer import parse_series

    return parse_series(value) if isinstance(value, str) else value
