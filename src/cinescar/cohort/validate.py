"""Every check a run makes on its input, runnable on its own as `cinescar validate COHORT`.

All problems are collected before stopping, so a user fixing a cohort sees the whole list at once; each
names the patient and the file. The workflow's first rule runs exactly this function, so nothing that
passes here can fail later for an input reason that could have been caught here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cinescar.cohort import plausibility
from cinescar.cohort.contract import (CATEGORICAL_VALUES, CLINICAL_NUMERIC, COHORTS, FILE_COLUMNS, IMAGE_COLUMNS,
                                      MANIFEST, MASK_COLUMNS, PATIENT_ID_PATTERN, PHASES, REQUIRED_COLUMNS,
                                      TEXT_COLUMNS, as_stack, cohort_role, geometry_mismatch, has_path,
                                      parse_scar_slices, read_manifest, read_volume, resolve_inside, slugify)
from cinescar.errors import CinescarError, CohortError

log = logging.getLogger(__name__)


class CohortValidationError(CinescarError):
    """One or more cohort problems; str() lists each, with patient and file."""

    def __init__(self, problems: list[CohortError], cohort_dir: str | Path):
        self.problems = problems
        lines = [f"cohort {cohort_dir} failed validation ({len(problems)} problem(s)):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass
class ValidationReport:
    cohort_dir: str
    n_patients: int = 0
    n_internal: int = 0
    n_external: int = 0
    n_lge_positive: int = 0
    centers: list[str] = field(default_factory=list)
    center_slugs: list[str] = field(default_factory=list)
    slices_per_phase: dict[str, int] = field(default_factory=dict)
    patients_without_masks: int = 0
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def to_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2))


CHECKS = [
    "manifest.csv exists and has the required columns",
    "patient_id present, pseudonymous pattern [A-Za-z0-9_-]+, unique",
    "no patient in both the internal and the external cohort",
    "cohort in {internal, external, external:<name>}; lge in {0, 1}; center and vendor present",
    "every image and mask file exists and is readable by SimpleITK",
    "mask geometry (size, spacing, origin, direction) equals its image's",
    "mask values are binary {0, 1} and the myocardium is not empty",
    "image intensities are finite and not constant",
    "scar_slices indices lie within the stack",
    "scar_slices only on LGE+ patients (lge = 1), and at least one of them holds myocardium in the ED or ES mask",
    "clinical columns, where present, are numeric; categorical ones within their documented values (sex: M/F)",
    "ID and categorical cells without leading or trailing whitespace (a warning naming line and column)",
    "no image file is shared by two patients",
    "manifest: no repeated column, at least one patient; paths stay inside the cohort folder (unless opted in)",
    "plausible exam: scalar 3D stacks, in-plane spacing plausible and the slice axis the coarsest, resampled size "
    "bounded, myocardium share of a slice and number of slices with myocardium plausible, ED and ES distinct",
    "NaN/Inf voxels found in every format (NIfTI read raw with nibabel)",
    "with the config: the internal cohort splits into the configured test set and folds, both classes in each",
]


def _check_rows(df: pd.DataFrame, manifest: Path, problems: list[CohortError]) -> None:
    missing = [c for c in REQUIRED_COLUMNS + IMAGE_COLUMNS if c not in df.columns]
    if missing:
        problems.append(CohortError(f"manifest lacks required column(s): {', '.join(missing)}", path=manifest))
        return
    ids = df["patient_id"].fillna("").astype(str).str.strip()
    for i, pid in enumerate(ids):
        row = i + 2  # header is line 1
        if pid == "":
            problems.append(CohortError(f"line {row}: empty patient_id", path=manifest))
        elif not PATIENT_ID_PATTERN.match(pid):
            problems.append(CohortError("patient_id must match [A-Za-z0-9_-]+ (pseudonymous IDs only)",
                                        pid, manifest))
    for pid, group in df.groupby(ids):
        if pid and len(group) > 1:
            cohorts = {cohort_role(c) for c in group["cohort"]}  # issue 12: external:<name> is external
            if {"internal", "external"} <= cohorts:
                problems.append(CohortError("patient is in both the internal and the external cohort",
                                            pid, manifest))
            else:
                problems.append(CohortError(f"duplicate patient_id ({len(group)} rows)", pid, manifest))
    for _, r in df.iterrows():
        pid = str(r["patient_id"])
        if cohort_role(r["cohort"]) is None:  # issue 12: also external:<name>
            problems.append(CohortError(f"cohort {r['cohort']!r} is not one of {COHORTS} or external:<name>",
                                        pid, manifest))
        lge = r["lge"]
        try:
            ok = float(lge) in (0.0, 1.0)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(CohortError(f"lge label {lge!r} missing or not 0/1", pid, manifest))
        elif float(lge) == 0.0 and "scar_slices" in df.columns and not _blank(r["scar_slices"]):
            problems.append(CohortError(f"scar_slices {r['scar_slices']!r} given for an LGE- patient (lge = 0): "
                                        "only LGE+ patients have scar slices; correct lge or clear scar_slices",
                                        pid, manifest))
        for col in ("center", "vendor"):
            if pd.isna(r[col]) or str(r[col]).strip() == "":
                problems.append(CohortError(f"empty {col}", pid, manifest))
        for col in CLINICAL_NUMERIC:
            if col in df.columns and not pd.isna(r[col]):
                try:
                    float(r[col])
                except (TypeError, ValueError):
                    problems.append(CohortError(f"clinical column {col} = {r[col]!r} is not a number",
                                                pid, manifest))
        for col, allowed in CATEGORICAL_VALUES.items():
            if col in df.columns and not _blank(r[col]) and str(r[col]).strip().upper() not in allowed:
                problems.append(CohortError(f"clinical column {col} = {r[col]!r} is not one of "
                                            f"{'/'.join(allowed)} (leave the cell empty when unknown)",
                                            pid, manifest))


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""


def whitespace_warnings(df: pd.DataFrame, manifest: Path) -> list[str]:
    """One warning per ID or categorical cell with leading or trailing whitespace, naming its line and column.

    Why only a warning: the checks read these cells stripped, so the cohort passes, but later steps may keep
    the value as typed (`"P041 "` in an output where a user looks for `P041`); whitespace-only cells are
    reported as empty by the other checks."""
    out = []
    for col in (c for c in TEXT_COLUMNS if c in df.columns):
        for i, value in enumerate(df[col]):
            if isinstance(value, str) and value.strip() and value != value.strip():
                out.append(f"{manifest.name} line {i + 2}, column {col}: {value!r} has leading or trailing "
                           f"whitespace (checked as {value.strip()!r}, kept as typed by later steps): remove it")
    return out


def _check_splittable(df: pd.DataFrame, cfg: dict, manifest: Path) -> list[CohortError]:
    """Try the configured split on the manifest's labels: per-class counts against `splits.folds` and
    `splits.test_fraction`, with the split function itself so the two cannot disagree."""
    from cinescar.cohort.splits import make_splits

    sp = cfg["splits"]
    folds, fraction = int(sp.get("folds", 5)), float(sp.get("test_fraction", 0.21))
    internal = df[df["cohort"] == "internal"]
    counts = internal["lge"].astype(float).astype(int).value_counts().to_dict()
    try:
        make_splits(df, fraction, folds, int(cfg.get("seed", 42)))
    except (CinescarError, ValueError) as exc:
        return [CohortError(f"the internal cohort ({counts.get(1, 0)} LGE+, {counts.get(0, 0)} LGE-) cannot be split "
                            f"into a test set (splits.test_fraction = {fraction:g}) and {folds} folds (splits.folds) "
                            f"that all hold both classes: {exc}", path=manifest)]
    return []


def check_exam(pid: str, files: dict[str, Path], scar_slices: list[int] | None = None,
               source: Path | None = None, warnings: list[str] | None = None,
               target_spacing_mm: float = 1.0, volumes: dict | None = None
               ) -> tuple[list[CohortError], dict[str, int]]:  # fmt: skip
    """Check one patient's ED/ES images and masks; returns problems and slices per phase.

    Shared by cohort validation and by screening a single new exam, so both report the same errors. The
    plausibility checks (`cinescar.cohort.plausibility`) add errors for input no real exam looks like and
    append warnings for unusual but possible exams to `warnings` when it is given. `volumes` is a read cache
    (`read_volume`'s): screening passes it on to preprocessing, so each file is read once by SimpleITK.
    """
    problems: list[CohortError] = []
    n_slices: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}
    myocardium: dict[str, set[int]] = {}  # per phase whose mask is usable: the slices holding myocardium
    warn = warnings if warnings is not None else []

    def add(found: plausibility.Findings, default_col: str) -> bool:
        for message, col in found.errors:
            problems.append(CohortError(message, pid, files.get(col or default_col)))
        warn.extend(found.warnings)
        return bool(found.errors)

    same_file = add(plausibility.check_distinct_files(files), "es_image")
    for phase, (img_col, mask_col) in PHASES.items():
        if mask_col not in files:  # no manual mask (issue 22): the image's own checks only
            problems.extend(_check_image_only(pid, phase, files[img_col], img_col, volumes, target_spacing_mm,
                                              n_slices, arrays, add))
            continue
        try:
            img = read_volume(files[img_col], pid, volumes)
            msk = read_volume(files[mask_col], pid, volumes)
        except CohortError as exc:
            problems.append(exc)
            continue
        bad = False
        for col, im in ((img_col, img), (mask_col, msk)):
            bad |= add(plausibility.check_pixels(phase, im.GetDimension(), im.GetNumberOfComponentsPerPixel(), col),
                       col)
            if im.GetDimension() == 4 and im.GetSize()[3] > 1:
                problems.append(CohortError(f"{phase}: a 4D file with {im.GetSize()[3]} time frames; give the ED and "
                                            "ES frames as separate 3D stacks", pid, files[col]))
                bad = True
        if bad:
            continue
        geometry = geometry_mismatch(img, msk)
        if geometry:
            problems.append(CohortError(f"{phase}: {geometry}", pid, files[mask_col]))
            continue
        spacing = tuple(float(s) for s in img.GetSpacing())
        size = img.GetSize()
        if add(plausibility.check_resampled_size(phase, (size[0], size[1]), (spacing[0], spacing[1]),
                                                 target_spacing_mm, img_col), img_col):
            continue
        add(plausibility.check_spacing(phase, spacing, int(size[2]) if len(size) > 2 else 1, img_col), img_col)
        arr, _ = as_stack(img)
        marr, _ = as_stack(msk)
        n_slices[phase] = arr.shape[0]
        arrays[img_col] = arr
        if not np.all(np.isfinite(arr)) or plausibility.nonfinite_in_raw_file(Path(files[img_col])):
            problems.append(CohortError(f"{phase}: image holds NaN or infinite values", pid, files[img_col]))
        elif float(arr.max()) == float(arr.min()):
            problems.append(CohortError(f"{phase}: image is constant", pid, files[img_col]))
        if plausibility.nonfinite_in_raw_file(Path(files[mask_col])):
            problems.append(CohortError(f"{phase}: mask holds NaN or infinite values", pid, files[mask_col]))
            continue
        values = np.unique(marr)
        if not np.all(np.isin(values, (0, 1))):
            shown = ", ".join(str(v) for v in values[:6])
            problems.append(CohortError(f"{phase}: mask is not binary (values {shown}); expected myocardium "
                                        "= 1, background = 0", pid, files[mask_col]))
        elif not values.max(initial=0) == 1:
            problems.append(CohortError(f"{phase}: mask is empty (no myocardium)", pid, files[mask_col]))
        else:
            add(plausibility.check_myocardium(phase, marr, mask_col), mask_col)
            myocardium[phase] = {int(z) for z in np.flatnonzero(marr.reshape(marr.shape[0], -1).any(axis=1))}
    if len(arrays) == 2 and not same_file:
        add(plausibility.check_distinct_pixels(arrays["ed_image"], arrays["es_image"]), "es_image")
    if scar_slices and n_slices:
        depth = min(n_slices.values())
        bad_slices = [s for s in scar_slices if s < 0 or s >= depth]
        if bad_slices:
            problems.append(CohortError(f"scar_slices {bad_slices} outside the stack of {depth} slices", pid, source))
        elif set(myocardium) == set(PHASES):  # only with every mask read and usable (none given: nothing to check)
            held = set().union(*myocardium.values())
            if not held & set(scar_slices):
                problems.append(CohortError(
                    f"scar_slices {scar_slices}: none of them holds myocardium in the ED or ES mask (myocardium on "
                    f"slices {sorted(held)}), so no image of the patient shows its scar; correct scar_slices or "
                    "the masks", pid, source))
    return problems, n_slices


def _check_image_only(pid: str, phase: str, path: Path, img_col: str, volumes: dict | None, target_mm: float,
                      n_slices: dict, arrays: dict, add) -> list[CohortError]:
    """The checks of an image that has no manual mask: readable, scalar 3D, plausible spacing, finite, not
    constant -- the same rules as with a mask (a predicted mask is checked by the segmentation QC)."""
    try:
        img = read_volume(path, pid, volumes)
    except CohortError as exc:
        return [exc]
    if add(plausibility.check_pixels(phase, img.GetDimension(), img.GetNumberOfComponentsPerPixel(), img_col),
           img_col):
        return []
    if img.GetDimension() == 4 and img.GetSize()[3] > 1:
        return [CohortError(f"{phase}: a 4D file with {img.GetSize()[3]} time frames; give the ED and ES frames "
                            "as separate 3D stacks", pid, path)]
    spacing = tuple(float(s) for s in img.GetSpacing())
    size = img.GetSize()
    if add(plausibility.check_resampled_size(phase, (size[0], size[1]), (spacing[0], spacing[1]), target_mm,
                                             img_col), img_col):
        return []
    add(plausibility.check_spacing(phase, spacing, int(size[2]) if len(size) > 2 else 1, img_col), img_col)
    arr, _ = as_stack(img)
    n_slices[phase] = arr.shape[0]
    arrays[img_col] = arr
    if not np.all(np.isfinite(arr)) or plausibility.nonfinite_in_raw_file(Path(path)):
        return [CohortError(f"{phase}: image holds NaN or infinite values", pid, path)]
    if float(arr.max()) == float(arr.min()):
        return [CohortError(f"{phase}: image is constant", pid, path)]
    return []


def validate_cohort(cohort_dir: str | Path, check_images: bool = True, cfg: dict | None = None,
                    allow_outside: bool | None = None) -> ValidationReport:  # fmt: skip
    """Run every check; raise CohortValidationError listing all problems, else return a report.

    With the workflow's config `cfg`, also check that the internal cohort can be split as configured
    (`splits.folds`, `splits.test_fraction`, `seed`: the split itself is tried, so a cohort too small or
    one-class for the folds fails here and not at the split), resample sizes at `preprocessing.spacing_mm`,
    and take `cohort.allow_outside_paths`. `allow_outside` overrides the latter.
    """
    cfg = cfg or {}
    seg = cfg.get("segmentation", {})
    masks_policy = str(seg.get("masks", "auto")) if seg.get("enabled", True) else "manual"
    if allow_outside is None:
        allow_outside = bool(cfg.get("cohort", {}).get("allow_outside_paths", False))
    target_mm = float(cfg.get("preprocessing", {}).get("spacing_mm", 1.0))
    cohort_dir = Path(cohort_dir)
    manifest = cohort_dir / MANIFEST
    df = read_manifest(cohort_dir)
    problems: list[CohortError] = []
    _check_rows(df, manifest, problems)
    if problems and any("required column" in p.message for p in problems):
        raise CohortValidationError(problems, cohort_dir)
    report = ValidationReport(cohort_dir=str(cohort_dir), checks=list(CHECKS))
    report.warnings.extend(whitespace_warnings(df, manifest))
    seen_files: dict[Path, str] = {}
    slices: dict[str, int] = {}
    for _, r in df.iterrows():
        pid = str(r["patient_id"])
        files = {}
        for col in FILE_COLUMNS:
            if not has_path(r[col]):
                if col in IMAGE_COLUMNS or masks_policy == "manual":
                    why = "" if col in IMAGE_COLUMNS else (" (segmentation.masks: manual needs every mask; auto "
                                                           "predicts the missing ones)")
                    problems.append(CohortError(f"empty {col} path{why}", pid, manifest))
                continue
            try:
                path = resolve_inside(cohort_dir, r[col], pid, allow_outside)
            except CohortError as exc:
                problems.append(exc)
                continue
            files[col] = path
            if path in seen_files and seen_files[path] != pid:
                problems.append(CohortError(f"file is also listed for patient {seen_files[path]}", pid, path))
            seen_files[path] = pid
        try:
            scar = parse_scar_slices(r.get("scar_slices"), pid, manifest)
        except CohortError as exc:
            problems.append(exc)
            scar = None
        if check_images and all(c in files for c in IMAGE_COLUMNS) and (
                masks_policy != "manual" or len(files) == len(FILE_COLUMNS)):
            report.patients_without_masks += int(not all(c in files for c in MASK_COLUMNS))
            exam_warnings: list[str] = []
            exam_problems, n = check_exam(pid, files, scar, manifest, warnings=exam_warnings,
                                          target_spacing_mm=target_mm)
            problems.extend(exam_problems)
            report.warnings.extend(f"patient {pid}: {w}" for w in exam_warnings)
            slices.update({f"{pid}:{k}": v for k, v in n.items()})
    if not problems and "splits" in cfg:
        problems.extend(_check_splittable(df, cfg, manifest))
    if problems:
        raise CohortValidationError(problems, cohort_dir)
    report.n_patients = len(df)
    roles = df["cohort"].map(cohort_role)  # issue 12: external:<name> counts as external
    report.n_internal = int((roles == "internal").sum())
    report.n_external = int((roles == "external").sum())
    report.n_lge_positive = int(df["lge"].astype(float).sum())
    report.centers = sorted(df["center"].astype(str).unique())
    report.center_slugs = sorted({slugify(c) for c in report.centers})
    if len(report.center_slugs) != len(report.centers):
        raise CohortValidationError([CohortError("two centre names map to the same slug "
                                                 f"({report.centers}); rename one", path=manifest)], cohort_dir)
    report.slices_per_phase = slices
    if report.n_internal == 0:
        report.warnings.append("no internal patients: nothing to develop models on")
    if report.n_external == 0:
        report.warnings.append("no external patients: the external test will be empty")
    log.info("cohort %s: %d patients (%d internal, %d external, %d LGE+), centres %s", cohort_dir,
             report.n_patients, report.n_internal, report.n_external, report.n_lge_positive, report.centers)
    return report


def validate_api(cohort: str | Path, *, manifest_only: bool = False, config: str | Path | None = None,
                 allow_outside_paths: bool = False, json_path: str | Path | None = None) -> ValidationReport:
    """`cinescar validate` as a function: check `cohort` against the workflow config `config` (default
    config/config.yaml: can the cohort be split as configured?), optionally write the report as JSON.

    Raises CohortValidationError listing every problem; the command line only prints what this returns.
    """
    from cinescar.config import load_config

    report = validate_cohort(cohort, check_images=not manifest_only, cfg=load_config(config),
                             allow_outside=True if allow_outside_paths else None)
    if json_path:
        report.to_json(json_path)
    return report
