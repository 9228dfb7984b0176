"""Import ACDC-format cine data (MICCAI 2017 challenge layout) into the cohort contract.

ACDC is the real, public cine cohort this project runs on (see `docs/acdc.md`). It has no LGE reading,
so the scar label is a *proxy* taken from the diagnostic group in each `Info.cfg` through a label map
(default: MINF -> 1, scar present; NOR and RV -> 0, scar absent; DCM and HCM left out because their scar
status is unknown). Every patient that is not imported is counted, with its reason, in
`import_summary.json` -- never dropped silently.

Per patient the importer writes the ED and ES frames named in `Info.cfg` and their myocardium masks
(label 2 of the `_gt` file as a {0,1} uint8 image with the frame's exact geometry) as NIfTI, and derives the
clinical columns the paper's Tables 1-2 report: height, weight, BMI (Info.cfg), LVEDV, LVESV, SV, LVEF (LV
cavity label 3 at ED/ES), LVM (myocardium at ED x 1.05 g/ml) and MWT (see `max_wall_thickness`).
`manifest.csv` is written last, atomically, so an interrupted import never looks complete.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from cinescar.cohort.contract import (COHORTS, FILE_COLUMNS, MANIFEST, MANIFEST_COLUMNS, PATIENT_ID_PATTERN, geometry_mismatch,
                                      read_manifest, read_volume)
from cinescar.errors import CohortError, ConfigError
from cinescar.io import atomic_write
from cinescar.logs import quiet_itk

log = logging.getLogger(__name__)

ACDC_GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")
DEFAULT_LABEL_MAP: dict[str, int] = {"MINF": 1, "NOR": 0, "RV": 0}
DEFAULT_CENTER = "Dijon"
DEFAULT_VENDOR = "Siemens"
SUMMARY = "import_summary.json"

# Labels of the ACDC `_gt` files.
RV_CAVITY, MYOCARDIUM, LV_CAVITY = 1, 2, 3
MYOCARDIAL_DENSITY_G_PER_ML = 1.05

_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


# --------------------------------------------------------------------------------------------- Info.cfg
@dataclass(frozen=True)
class AcdcInfo:
    """What one `Info.cfg` says: diagnostic group, ED/ES frame numbers (1-based), height (cm), weight (kg)."""

    group: str
    ed: int
    es: int
    height: float | None = None
    weight: float | None = None
    nb_frame: int | None = None


def read_info(path: str | Path, patient_id: str) -> AcdcInfo:
    """Parse an ACDC `Info.cfg` ("Key: value" lines); a missing or invalid Group/ED/ES is a CohortError."""
    path = Path(path)
    if not path.is_file():
        raise CohortError("Info.cfg not found", patient_id, path)
    fields: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()

    group = fields.get("group", "")
    if not group:
        raise CohortError("Info.cfg has no 'Group:' line", patient_id, path)
    if not _GROUP_PATTERN.match(group):
        raise CohortError(f"Info.cfg has an invalid Group {group!r}", patient_id, path)

    def integer(key: str, required: bool) -> int | None:
        raw = fields.get(key.lower())
        if raw is None or raw == "":
            if required:
                raise CohortError(f"Info.cfg has no '{key}:' line", patient_id, path)
            return None
        try:
            value = float(raw)
        except ValueError:
            raise CohortError(f"Info.cfg {key} {raw!r} is not a frame number", patient_id, path) from None
        if value != int(value) or value < 1:
            raise CohortError(f"Info.cfg {key} {raw!r} is not a frame number (integer >= 1)", patient_id, path)
        return int(value)

    def number(key: str) -> float | None:
        raw = fields.get(key.lower())
        if raw is None or raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            raise CohortError(f"Info.cfg {key} {raw!r} is not a number", patient_id, path) from None
        return value if np.isfinite(value) and value > 0 else None

    ed, es, nb_frame = integer("ED", True), integer("ES", True), integer("NbFrame", False)
    if ed == es:
        raise CohortError(f"Info.cfg names the same frame ({ed}) for ED and ES", patient_id, path)
    for key, frame in (("ED", ed), ("ES", es)):
        if nb_frame is not None and frame > nb_frame:
            raise CohortError(f"Info.cfg {key} frame {frame} exceeds NbFrame {nb_frame}", patient_id, path)
    return AcdcInfo(group=group, ed=ed, es=es, height=number("Height"), weight=number("Weight"),
                    nb_frame=nb_frame)


# ------------------------------------------------------------------------------------------- label map
def validate_label_map(mapping: Mapping[str, Any]) -> dict[str, int]:
    """Check a group -> label mapping: group names are tokens, labels 0 or 1, at least one of each."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise ConfigError("acdc label map must map at least one group to a label (e.g. MINF=1,NOR=0)")
    clean: dict[str, int] = {}
    for group, label in mapping.items():
        group = str(group).strip()
        if not _GROUP_PATTERN.match(group):
            raise ConfigError(f"acdc label map: invalid group name {group!r}")
        try:
            value = int(label)
        except (TypeError, ValueError):
            value = -1
        if value not in (0, 1) or (isinstance(label, float) and label != value) or isinstance(label, bool):
            raise ConfigError(f"acdc label map: label of {group} must be 0 or 1, got {label!r}")
        clean[group] = value
    if set(clean.values()) != {0, 1}:
        raise ConfigError(f"acdc label map {clean} must give some group label 1 and some group label 0")
    return clean


def parse_label_map(text: str) -> dict[str, int]:
    """`"MINF=1,NOR=0,RV=0"` -> {"MINF": 1, "NOR": 0, "RV": 0} (validated)."""
    mapping: dict[str, str] = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(f"--label-map item {item.strip()!r} is not GROUP=LABEL (e.g. MINF=1,NOR=0,RV=0)")
        group, label = item.split("=", 1)
        if group.strip() in mapping:
            raise ConfigError(f"--label-map names group {group.strip()} twice")
        mapping[group.strip()] = label.strip()
    return validate_label_map(mapping)


# ------------------------------------------------------------------------------------ clinical measures
def max_wall_thickness(myocardium: np.ndarray, spacing_xy: tuple[float, float],
                       cavity: np.ndarray | None = None) -> float:
    """Maximum LV wall thickness (mm) of a (slices, rows, cols) myocardium mask.

    Method (per short-axis slice, in-plane only, with the pixel spacing): the wall thickness at each
    endocardial point is its distance to the nearest point outside the wall. Concretely, the endocardial
    points are the myocardium pixels 4-adjacent to the LV cavity, and their thickness is the exact
    Euclidean distance (`scipy.ndimage.distance_transform_edt`, `sampling` = pixel spacing) from their
    centre to the centre of the nearest pixel that is neither myocardium nor cavity. Centre to centre
    spans exactly the wall for a wall n pixels across (n x spacing), so no half-pixel correction is needed.
    MWT is the maximum over all endocardial points of all slices.

    Why not 2 x the myocardium's own maximal inner distance: a solid apical cap (myocardium with no cavity)
    would then count its whole diameter as "wall", and the inner distance is biased by up to one pixel.
    Slices without a cavity are skipped here for the same reason. `cavity` defaults to the holes of the
    myocardium (for masks without a cavity label); ACDC passes its LV-cavity label. NaN when no slice has
    both myocardium and cavity.
    """
    myocardium = np.asarray(myocardium).astype(bool)
    if myocardium.ndim == 2:
        myocardium = myocardium[None]
    if cavity is None:
        cavity = np.stack([ndimage.binary_fill_holes(s) & ~s for s in myocardium])
    cavity = np.asarray(cavity).astype(bool).reshape(myocardium.shape) & ~myocardium
    sampling = (float(spacing_xy[1]), float(spacing_xy[0]))  # array axes are (rows=y, cols=x)
    best = np.nan
    for myo, cav in zip(myocardium, cavity):
        if not myo.any() or not cav.any():
            continue
        endocardial = myo & ndimage.binary_dilation(cav)
        if not endocardial.any():
            continue
        to_outside = ndimage.distance_transform_edt(myo | cav, sampling=sampling)
        slice_max = float(to_outside[endocardial].max())
        best = slice_max if np.isnan(best) else max(best, slice_max)
    return best


def clinical_measures(ed_labels: np.ndarray, ed_spacing: tuple[float, float, float],
                      es_labels: np.ndarray, es_spacing: tuple[float, float, float]) -> dict[str, float]:
    """LVEDV, LVESV, SV (ml), LVEF (%), LVM (g), MWT (mm) from ACDC label stacks (slices, rows, cols).

    Volumes are voxel counts x voxel volume (the usual summation of slice areas x slice thickness, which is
    what ACDC's own reference volumes are); LVM is the ED myocardium volume x 1.05 g/ml.
    """
    ed_voxel_ml = float(np.prod(ed_spacing)) / 1000.0
    es_voxel_ml = float(np.prod(es_spacing)) / 1000.0
    edv = float(np.count_nonzero(ed_labels == LV_CAVITY)) * ed_voxel_ml
    esv = float(np.count_nonzero(es_labels == LV_CAVITY)) * es_voxel_ml
    out = {"LVEDV": np.nan, "LVESV": np.nan, "SV": np.nan, "LVEF": np.nan}
    if edv > 0:
        out = {"LVEDV": edv, "LVESV": esv, "SV": edv - esv, "LVEF": 100.0 * (edv - esv) / edv}
    out["LVM"] = float(np.count_nonzero(ed_labels == MYOCARDIUM)) * ed_voxel_ml * MYOCARDIAL_DENSITY_G_PER_ML
    out["MWT"] = max_wall_thickness(ed_labels == MYOCARDIUM, ed_spacing[:2], cavity=ed_labels == LV_CAVITY)
    return out


def body_mass_index(height_cm: float | None, weight_kg: float | None) -> float:
    """BMI in kg/m^2 (NaN when height or weight is unknown)."""
    if not height_cm or not weight_kg:
        return np.nan
    return weight_kg / (height_cm / 100.0) ** 2


# ---------------------------------------------------------------------------------------- per patient
def frame_file(folder: Path, patient_id: str, frame: int, gt: bool) -> Path:
    """`patientNNN_frameXX[_gt].nii.gz` (or `.nii`); a missing file is a CohortError naming it."""
    stem = f"{patient_id}_frame{frame:02d}{'_gt' if gt else ''}"
    for suffix in (".nii.gz", ".nii"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    what = "contour (_gt) file" if gt else "frame file"
    raise CohortError(f"{what} for frame {frame} named in Info.cfg not found", patient_id, folder / f"{stem}.nii.gz")


def _convert_phase(folder: Path, patient_id: str, phase: str, frame: int, out_dir: Path
                   ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Write one phase's image and myocardium mask; return the gt labels (slices, rows, cols) and spacing."""
    image_path = frame_file(folder, patient_id, frame, gt=False)
    gt_path = frame_file(folder, patient_id, frame, gt=True)
    with quiet_itk():
        image = read_volume(image_path, patient_id)
        gt = read_volume(gt_path, patient_id)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CohortError(f"expected a 3D scalar short-axis stack, got {image.GetDimension()}D with "
                          f"{image.GetNumberOfComponentsPerPixel()} component(s)", patient_id, image_path)
    mismatch = geometry_mismatch(image, gt)
    if mismatch:
        raise CohortError(f"contour geometry differs from its image ({mismatch.replace('mask', 'contour')})",
                          patient_id, gt_path)
    labels = sitk.GetArrayFromImage(gt)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise CohortError("contour file holds non-integer labels", patient_id, gt_path)
        labels = labels.astype(np.int16)
    myocardium = (labels == MYOCARDIUM).astype(np.uint8)
    if not myocardium.any():
        raise CohortError(f"contour file has no myocardium (label {MYOCARDIUM})", patient_id, gt_path)

    mask = sitk.GetImageFromArray(myocardium)
    mask.CopyInformation(image)
    sitk.WriteImage(image, str(out_dir / "images" / f"{patient_id}_{phase}.nii.gz"))
    sitk.WriteImage(mask, str(out_dir / "masks" / f"{patient_id}_{phase}.nii.gz"))
    spacing = tuple(float(s) for s in image.GetSpacing())
    return labels, spacing  # type: ignore[return-value]


def convert_patient(folder: Path, patient_id: str, info: AcdcInfo, out_dir: Path) -> tuple[dict, list[str]]:
    """Write one patient's ED/ES images and masks; return its manifest fields (files, clinical) and warnings."""
    ed_labels, ed_spacing = _convert_phase(folder, patient_id, "ED", info.ed, out_dir)
    es_labels, es_spacing = _convert_phase(folder, patient_id, "ES", info.es, out_dir)
    measures = clinical_measures(ed_labels, ed_spacing, es_labels, es_spacing)
    warnings = []
    if np.isnan(measures["LVEDV"]):
        warnings.append(f"{patient_id}: no LV cavity (label {LV_CAVITY}) at ED; volumes and LVEF left empty")
    if np.isnan(measures["MWT"]):
        warnings.append(f"{patient_id}: no slice with both myocardium and LV cavity at ED; MWT left empty")
    row = {
        "ed_image": f"images/{patient_id}_ED.nii.gz", "ed_mask": f"masks/{patient_id}_ED.nii.gz",
        "es_image": f"images/{patient_id}_ES.nii.gz", "es_mask": f"masks/{patient_id}_ES.nii.gz",
        "height": info.height if info.height is not None else np.nan,
        "weight": info.weight if info.weight is not None else np.nan,
        "BMI": body_mass_index(info.height, info.weight),
        **measures,
    }
    return row, warnings


# ------------------------------------------------------------------------------------------- the import
def patient_folders(acdc_dir: Path) -> list[Path]:
    """The patient folders of an ACDC-style directory: every non-hidden subfolder, sorted by name."""
    if not acdc_dir.is_dir():
        raise CohortError("ACDC folder does not exist", path=acdc_dir)
    folders = sorted(p for p in acdc_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not any((f / "Info.cfg").is_file() for f in folders):
        # Most likely the database's top folder was given instead of its training/ (or testing/) folder.
        hint = " (did you mean its training/ subfolder?)" if (acdc_dir / "training").is_dir() else ""
        raise CohortError(f"ACDC folder holds no patient folders (subfolders with an Info.cfg){hint}",
                          path=acdc_dir)
    return folders


def _format(value: Any) -> str:
    """Manifest cell: empty for missing, 2 decimals for measured floats."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def import_acdc(acdc_dir: str | Path, out_dir: str | Path, *, label_map: Mapping[str, Any] | None = None,
                center: str = DEFAULT_CENTER, vendor: str = DEFAULT_VENDOR, cohort: str = "internal",
                append: bool = False, patients: Iterable[str] | None = None, with_masks: bool = True) -> dict:
    """Convert an ACDC-style folder (one subfolder per patient) into a cohort folder; return the summary.

    `patients` restricts the import to those patient folders (all when None). With `append`, the patients
    are added to the cohort already in `out_dir` (an ID already present is a CohortError); without it,
    `out_dir` must not hold a manifest yet. Nothing is written to the manifest unless every selected
    patient converts; the summary (`import_summary.json`) lists patients per group, imported and left out
    with the reason, and is kept as a list of imports when appending. `with_masks=False` leaves both mask
    columns empty and writes no mask (a cohort as a site without contours brings it, issue 22); the clinical
    measures (LVEDV, LVM, MWT, ...) still come from the expert labels, as a reader's report would give them.
    """
    started = time.perf_counter()
    acdc_dir, out_dir = Path(acdc_dir), Path(out_dir)
    label_map = validate_label_map(DEFAULT_LABEL_MAP if label_map is None else label_map)
    if cohort not in COHORTS:
        raise ConfigError(f"cohort must be one of {', '.join(COHORTS)}, got {cohort!r}")
    for name, value in (("center", center), ("vendor", vendor)):
        if not str(value).strip():
            raise ConfigError(f"acdc {name} must not be empty")

    folders = patient_folders(acdc_dir)
    if patients is not None:
        wanted = list(dict.fromkeys(patients))
        by_name = {f.name: f for f in folders}
        missing = [p for p in wanted if p not in by_name]
        if missing:
            raise CohortError(f"patient folder(s) not found: {', '.join(missing)}", path=acdc_dir)
        folders = [by_name[p] for p in wanted]

    # Existing cohort: refuse to overwrite, or collect IDs to refuse duplicates.
    existing: pd.DataFrame | None = None
    previous_imports: list[dict] = []
    if (out_dir / MANIFEST).exists():
        if not append:
            raise CohortError("folder already holds a cohort; pass --append to add patients to it, "
                              "or choose a new folder", path=out_dir / MANIFEST)
        existing = pd.read_csv(out_dir / MANIFEST, dtype=str, keep_default_na=False)
        read_manifest(out_dir)  # same readability check the rest of the pipeline applies
        if (out_dir / SUMMARY).exists():
            try:
                previous_imports = list(json.loads((out_dir / SUMMARY).read_text()).get("imports", []))
            except (json.JSONDecodeError, AttributeError):
                raise CohortError("import summary is not valid JSON", path=out_dir / SUMMARY) from None
    present = set(existing["patient_id"]) if existing is not None and "patient_id" in existing else set()

    # Read every Info.cfg first (cheap): an invalid one stops the import before any file is written.
    plan: list[tuple[Path, str, AcdcInfo]] = []
    for folder in folders:
        patient_id = folder.name
        if not PATIENT_ID_PATTERN.match(patient_id):
            raise CohortError("patient folder name is not a valid patient ID ([A-Za-z0-9_-]+)", patient_id, folder)
        plan.append((folder, patient_id, read_info(folder / "Info.cfg", patient_id)))
    clashes = [pid for _, pid, info in plan if info.group in label_map and pid in present]
    if clashes:
        raise CohortError(f"patient ID(s) already in the cohort: {', '.join(clashes)}", path=out_dir / MANIFEST)

    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    imported: list[dict] = []
    left_out: list[dict] = []
    warnings: list[str] = []
    for folder, patient_id, info in plan:
        if info.group not in label_map:
            left_out.append({"patient_id": patient_id, "group": info.group,
                             "reason": f"group {info.group} not in the label map"})
            continue
        fields, patient_warnings = convert_patient(folder, patient_id, info, out_dir)
        if not with_masks:
            for col in ("ed_mask", "es_mask"):
                (out_dir / fields[col]).unlink()
                fields[col] = ""
        warnings.extend(patient_warnings)
        lge = label_map[info.group]
        rows.append({"patient_id": patient_id, "center": center, "vendor": vendor, "cohort": cohort,
                     "lge": lge, "scar_slices": "", "age": "", "sex": "", "CO": "", **fields})
        imported.append({"patient_id": patient_id, "group": info.group, "lge": lge})
        log.info("imported %s (%s -> lge %d)", patient_id, info.group, lge)

    groups = Counter(info.group for _, _, info in plan)
    summary = {
        "source": str(acdc_dir.resolve()),
        "cohort": cohort,
        "center": center,
        "vendor": vendor,
        "label_map": label_map,
        "appended": existing is not None,
        "patients_per_group": dict(sorted(groups.items())),
        "imported": {
            "total": len(imported),
            "by_group": dict(sorted(Counter(p["group"] for p in imported).items())),
            "by_label": {str(k): v for k, v in sorted(Counter(p["lge"] for p in imported).items())},
            "patients": imported,
        },
        "left_out": {
            "total": len(left_out),
            "by_group": dict(sorted(Counter(p["group"] for p in left_out).items())),
            "patients": left_out,
        },
        "warnings": warnings,
        "masks": with_masks,
    }

    new = pd.DataFrame([{c: _format(r.get(c)) for c in MANIFEST_COLUMNS} for r in rows], columns=MANIFEST_COLUMNS)
    if existing is not None:
        columns = list(existing.columns) + [c for c in MANIFEST_COLUMNS if c not in existing.columns]
        manifest = pd.concat([existing.reindex(columns=columns, fill_value=""),
                              new.reindex(columns=columns, fill_value="")], ignore_index=True)
    else:
        manifest = new
    atomic_write(out_dir / SUMMARY, lambda p: p.write_text(
        json.dumps({"imports": previous_imports + [summary]}, indent=2) + "\n"))
    atomic_write(out_dir / MANIFEST, lambda p: manifest.to_csv(p, index=False))  # last: marks completion
    log.info("ACDC import: %d imported, %d left out in %.1f s", len(imported), len(left_out),
             time.perf_counter() - started)
    return summary


MASKS_ONLY_COLUMNS = ["patient_id", "center", "vendor", "group", *FILE_COLUMNS]


def import_acdc_masks_only(acdc_dir: str | Path, out_dir: str | Path, groups: Iterable[str], *,
                           center: str = DEFAULT_CENTER, vendor: str = DEFAULT_VENDOR,
                           exclude: Iterable[str] = ()) -> dict:
    """The ACDC patients of `groups` (e.g. DCM and HCM, which the scar proxy leaves out) as a masks-only cohort
    for `segmentation.extra_cohorts`: images and myocardium masks, no scar label, so they can train the
    segmenter and nothing else (issue 22). A patient in `exclude` (the study's own patients) is refused, so
    the same patient can never be both a masks-only training case and a study patient."""
    acdc_dir, out_dir = Path(acdc_dir), Path(out_dir)
    groups = list(dict.fromkeys(groups))
    unknown = [g for g in groups if g not in ACDC_GROUPS]
    if unknown:
        raise ConfigError(f"acdc masks-only groups {unknown} are not ACDC groups ({', '.join(ACDC_GROUPS)})")
    if (out_dir / MANIFEST).exists():
        raise CohortError("folder already holds a cohort; choose a new folder for the masks-only cohort",
                          path=out_dir / MANIFEST)
    study = set(exclude)
    plan = []
    for folder in patient_folders(acdc_dir):
        info = read_info(folder / "Info.cfg", folder.name)
        if info.group in groups:
            if folder.name in study:
                raise CohortError("patient is in the study's cohort and would also train the segmenter as a "
                                  "masks-only case", folder.name, folder)
            plan.append((folder, folder.name, info))
    if not plan:
        raise CohortError(f"no patient of group(s) {', '.join(groups)} found", path=acdc_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for folder, patient_id, info in plan:
        for phase, frame in (("ED", info.ed), ("ES", info.es)):
            _convert_phase(folder, patient_id, phase, frame, out_dir)
        rows.append({"patient_id": patient_id, "center": center, "vendor": vendor, "group": info.group,
                     "ed_image": f"images/{patient_id}_ED.nii.gz", "ed_mask": f"masks/{patient_id}_ED.nii.gz",
                     "es_image": f"images/{patient_id}_ES.nii.gz", "es_mask": f"masks/{patient_id}_ES.nii.gz"})
    manifest = pd.DataFrame(rows, columns=MASKS_ONLY_COLUMNS)
    summary = {"masks_only": True, "groups": groups, "patients": len(rows),
               "by_group": dict(sorted(Counter(r["group"] for r in rows).items()))}
    atomic_write(out_dir / SUMMARY, lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    atomic_write(out_dir / MANIFEST, lambda p: manifest.to_csv(p, index=False))  # last: marks completion
    log.info("ACDC masks-only import: %d patients of %s", len(rows), ", ".join(groups))
    return summary


def format_summary(summary: dict, out_dir: str | Path) -> str:
    """The human-readable lines `cinescar import-acdc` prints."""
    lines = [f"Imported {summary['imported']['total']} patient(s) from {summary['source']} into {out_dir} "
             f"({summary['cohort']}, centre {summary['center']}, vendor {summary['vendor']}"
             f"{', appended' if summary['appended'] else ''})."]
    by_label = summary["imported"]["by_label"]
    lines.append(f"Labels: lge=1: {by_label.get('1', 0)}, lge=0: {by_label.get('0', 0)} "
                 f"(label map {', '.join(f'{g}={v}' for g, v in summary['label_map'].items())}).")
    for group, n in summary["patients_per_group"].items():
        n_in = summary["imported"]["by_group"].get(group, 0)
        n_out = summary["left_out"]["by_group"].get(group, 0)
        status = (f"imported as lge={summary['label_map'][group]}" if n_in
                  else "left out: not in the label map")
        lines.append(f"  {group:<6} {n:4d} patient(s), {n_in} imported, {n_out} left out ({status})")
    for warning in summary["warnings"]:
        lines.append(f"  warning: {warning}")
    lines.append(f"Summary: {Path(out_dir) / SUMMARY}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cinescar import-acdc` (options left out fall back to the config section `acdc`)."""
    parser.add_argument("acdc_dir", type=Path, help="ACDC-style folder with one subfolder per patient "
                        "(Info.cfg, patientNNN_frameXX.nii.gz, patientNNN_frameXX_gt.nii.gz), e.g. ACDC/training")
    parser.add_argument("--out", type=Path, required=True, help="cohort folder to write (manifest.csv, images/, masks/)")
    parser.add_argument("--label-map", default=None,
                        help="group to scar label, e.g. MINF=1,NOR=0,RV=0 (default: config acdc.label_map, "
                             "i.e. the scar proxy MINF=1,NOR=0,RV=0); groups not named are left out and counted")
    parser.add_argument("--center", default=None, help=f"centre column (default: config acdc.center, {DEFAULT_CENTER})")
    parser.add_argument("--vendor", default=None, help=f"vendor column (default: config acdc.vendor, {DEFAULT_VENDOR})")
    parser.add_argument("--cohort", choices=COHORTS, default="internal",
                        help="cohort column: internal (development + internal test) or external")
    parser.add_argument("--append", action="store_true",
                        help="add the patients to the cohort already in --out (an ID already present is an error)")
    parser.add_argument("--config", type=Path, default=None,
                        help="config file whose `acdc` section gives the defaults")


def import_acdc_api(acdc_dir: str | Path, out: str | Path, *, label_map: str | Mapping[str, Any] | None = None,
                    center: str | None = None, vendor: str | None = None, cohort: str = "internal",
                    append: bool = False, config: str | Path | None = None) -> dict:
    """`cinescar import-acdc` as a function: what is not given (None or empty) comes from the config section
    `acdc` of `config` when one is named, else from this module's defaults; `label_map` may be the command
    line's text (`MINF=1,NOR=0`). Returns the import summary (`import_acdc`)."""
    section: dict = {}
    if config is not None:
        from cinescar.config import load_config

        section = dict(load_config(config).get("acdc", {}))
    if isinstance(label_map, str):
        label_map = parse_label_map(label_map)
    elif label_map is None:
        label_map = section.get("label_map", DEFAULT_LABEL_MAP)
    return import_acdc(acdc_dir, out, label_map=label_map, center=center or section.get("center", DEFAULT_CENTER),
                       vendor=vendor or section.get("vendor", DEFAULT_VENDOR), cohort=cohort, append=append)


def main(args: argparse.Namespace) -> int:
    """Run the import from parsed arguments, print the summary; return the exit status."""
    summary = import_acdc_api(args.acdc_dir, args.out, label_map=args.label_map, center=args.center,
                              vendor=args.vendor, cohort=args.cohort, append=args.append,
                              config=getattr(args, "config", None))
    print(format_summary(summary, args.out))
    return 0
