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

from cinescar.cohort.contract import (CLINICAL_NUMERIC, COHORTS, FILE_COLUMNS, MANIFEST, PATIENT_ID_PATTERN,
                                      PHASES, REQUIRED_COLUMNS, as_stack, parse_scar_slices, read_manifest,
                                      read_volume, resolve, slugify)
from cinescar.errors import CinescarError, CohortError

log = logging.getLogger(__name__)
GEOMETRY_TOLERANCE = 1e-3


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
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def to_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2))


CHECKS = [
    "manifest.csv exists and has the required columns",
    "patient_id present, pseudonymous pattern [A-Za-z0-9_-]+, unique",
    "no patient in both the internal and the external cohort",
    "cohort in {internal, external}; lge in {0, 1}; center and vendor present",
    "every image and mask file exists and is readable by SimpleITK",
    "mask geometry (size, spacing, origin, direction) equals its image's",
    "mask values are binary {0, 1} and the myocardium is not empty",
    "image intensities are finite and not constant",
    "scar_slices indices lie within the stack",
    "clinical columns, where present, are numeric",
    "no image file is shared by two patients",
]


def _check_rows(df: pd.DataFrame, manifest: Path, problems: list[CohortError]) -> None:
    missing = [c for c in REQUIRED_COLUMNS + FILE_COLUMNS if c not in df.columns]
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
            cohorts = set(group["cohort"].astype(str))
            if {"internal", "external"} <= cohorts:
                problems.append(CohortError("patient is in both the internal and the external cohort",
                                            pid, manifest))
            else:
                problems.append(CohortError(f"duplicate patient_id ({len(group)} rows)", pid, manifest))
    for _, r in df.iterrows():
        pid = str(r["patient_id"])
        if str(r["cohort"]) not in COHORTS:
            problems.append(CohortError(f"cohort {r['cohort']!r} is not one of {COHORTS}", pid, manifest))
        lge = r["lge"]
        try:
            ok = float(lge) in (0.0, 1.0)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(CohortError(f"lge label {lge!r} missing or not 0/1", pid, manifest))
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


def _same_geometry(a: sitk.Image, b: sitk.Image) -> str | None:
    if a.GetSize() != b.GetSize():
        return f"mask size {b.GetSize()} differs from image size {a.GetSize()}"
    for name, va, vb in (("spacing", a.GetSpacing(), b.GetSpacing()), ("origin", a.GetOrigin(), b.GetOrigin()),
                         ("direction", a.GetDirection(), b.GetDirection())):
        scale = max(1.0, max(abs(v) for v in va) if va else 1.0)
        if not np.allclose(va, vb, atol=GEOMETRY_TOLERANCE * scale):
            return f"mask {name} {tuple(round(v, 4) for v in vb)} differs from image {name} " \
                   f"{tuple(round(v, 4) for v in va)}"
    return None


def check_exam(pid: str, files: dict[str, Path], scar_slices: list[int] | None = None,
               source: Path | None = None, volumes: dict | None = None) -> tuple[list[CohortError], dict[str, int]]:
    """Check one patient's ED/ES images and masks; returns problems and slices per phase.

    Shared by cohort validation and by screening a single new exam, so both report the same errors.
    `volumes` is a read cache (`read_volume`'s): screening passes it on to preprocessing, so each file is
    read once.
    """
    problems: list[CohortError] = []
    n_slices: dict[str, int] = {}
    for phase, (img_col, mask_col) in PHASES.items():
        try:
            img = read_volume(files[img_col], pid, volumes)
            msk = read_volume(files[mask_col], pid, volumes)
        except CohortError as exc:
            problems.append(exc)
            continue
        geometry = _same_geometry(img, msk)
        if geometry:
            problems.append(CohortError(f"{phase}: {geometry}", pid, files[mask_col]))
            continue
        arr, _ = as_stack(img)
        marr, _ = as_stack(msk)
        n_slices[phase] = arr.shape[0]
        if not np.all(np.isfinite(arr)):
            problems.append(CohortError(f"{phase}: image holds NaN or infinite values", pid, files[img_col]))
        elif float(arr.max()) == float(arr.min()):
            problems.append(CohortError(f"{phase}: image is constant", pid, files[img_col]))
        values = np.unique(marr)
        if not np.all(np.isin(values, (0, 1))):
            shown = ", ".join(str(v) for v in values[:6])
            problems.append(CohortError(f"{phase}: mask is not binary (values {shown}); expected myocardium "
                                        "= 1, background = 0", pid, files[mask_col]))
        elif not values.max(initial=0) == 1:
            problems.append(CohortError(f"{phase}: mask is empty (no myocardium)", pid, files[mask_col]))
    if scar_slices and n_slices:
        depth = min(n_slices.values())
        bad = [s for s in scar_slices if s < 0 or s >= depth]
        if bad:
            problems.append(CohortError(f"scar_slices {bad} outside the stack of {depth} slices", pid, source))
    return problems, n_slices


def validate_cohort(cohort_dir: str | Path, check_images: bool = True) -> ValidationReport:
    """Run every check; raise CohortValidationError listing all problems, else return a report."""
    cohort_dir = Path(cohort_dir)
    manifest = cohort_dir / MANIFEST
    df = read_manifest(cohort_dir)
    problems: list[CohortError] = []
    _check_rows(df, manifest, problems)
    if problems and any("required column" in p.message for p in problems):
        raise CohortValidationError(problems, cohort_dir)
    report = ValidationReport(cohort_dir=str(cohort_dir), checks=list(CHECKS))
    seen_files: dict[Path, str] = {}
    slices: dict[str, int] = {}
    for _, r in df.iterrows():
        pid = str(r["patient_id"])
        files = {}
        for col in FILE_COLUMNS:
            if pd.isna(r[col]) or str(r[col]).strip() == "":
                problems.append(CohortError(f"empty {col} path", pid, manifest))
                continue
            path = resolve(cohort_dir, r[col])
            files[col] = path
            if path in seen_files and seen_files[path] != pid:
                problems.append(CohortError(f"file is also listed for patient {seen_files[path]}", pid, path))
            seen_files[path] = pid
        try:
            scar = parse_scar_slices(r.get("scar_slices"), pid, manifest)
        except CohortError as exc:
            problems.append(exc)
            scar = None
        if check_images and len(files) == len(FILE_COLUMNS):
            exam_problems, n = check_exam(pid, files, scar, manifest)
            problems.extend(exam_problems)
            slices.update({f"{pid}:{k}": v for k, v in n.items()})
    if problems:
        raise CohortValidationError(problems, cohort_dir)
    report.n_patients = len(df)
    report.n_internal = int((df["cohort"] == "internal").sum())
    report.n_external = int((df["cohort"] == "external").sum())
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
