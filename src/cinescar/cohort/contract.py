"""The cohort contract: what a user brings, and how it is read.

A cohort is a folder with `manifest.csv` (one row per patient) and, per patient, short-axis cine stacks at
end-diastole (ED) and end-systole (ES) with matching myocardium masks. Everything that reads user files goes
through this module, so that an unreadable file is always reported as a CohortError naming patient and
file rather than as an ITK exception.
"""

from __future__ import annotations

import csv
import locale
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cinescar.errors import CohortError

MANIFEST = "manifest.csv"
REQUIRED_COLUMNS = ["patient_id", "center", "vendor", "cohort", "lge"]
PHASES = {"ED": ("ed_image", "ed_mask"), "ES": ("es_image", "es_mask")}
FILE_COLUMNS = [c for pair in PHASES.values() for c in pair]
IMAGE_COLUMNS = [img for img, _ in PHASES.values()]
MASK_COLUMNS = [mask for _, mask in PHASES.values()]
"""Masks are optional (issue 22): an empty cell, or no mask column at all, means "segment it" -- the study's
segmenter predicts it (`segmentation.masks`, `mask_source`)."""
MASK_POLICIES = ("auto", "manual", "predicted")
CLINICAL_NUMERIC = ["age", "height", "weight", "BMI", "LVEDV", "LVESV", "SV", "LVEF", "CO", "LVM", "MWT"]
CLINICAL_CATEGORICAL = ["sex"]
CATEGORICAL_VALUES: dict[str, tuple[str, ...]] = {"sex": ("M", "F")}
"""The documented values of each categorical clinical column (docs/architecture.md). Compared after stripping
and upper-casing, as the clinical model codes them (`cinescar.baselines.clinical`); any other value is an
error, since that model would silently read it as missing."""
COHORTS = ("internal", "external")
PATIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
TEXT_COLUMNS = ["patient_id", "center", "vendor", "cohort", *CLINICAL_CATEGORICAL]
"""The ID and categorical columns: a cell's surrounding whitespace is easy to miss and makes the value differ
from the one the checks and outputs show, so validation names each such cell."""
MANIFEST_COLUMNS = [*REQUIRED_COLUMNS, *FILE_COLUMNS, "scar_slices", CLINICAL_NUMERIC[0], *CLINICAL_CATEGORICAL,
                    *CLINICAL_NUMERIC[1:]]
"""Every column of the contract, in the order of docs/architecture.md (what the importers and the synthetic
cohort write)."""
GEOMETRY_TOLERANCE = 1e-3
"""Relative tolerance (of the largest magnitude, at least 1) within which a mask's spacing, origin and
direction must equal its image's."""


# --- cohort roles, several external cohorts (issue 12) ------------------------------------------------
# `cohort` is `internal`, `external`, or `external:<name>` (e.g. `external:Rome`) when a study has several
# external cohorts. Every place that asks "is this patient external?" goes through `cohort_role`; the
# evaluation reports each external cohort on its own under `external_name`.
EXTERNAL_PREFIX = "external:"
EXTERNAL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")


def cohort_role(value: object) -> str | None:
    """'internal' or 'external' for a manifest `cohort` value; None when it is neither (a validation error)."""
    v = str(value).strip()
    if v in COHORTS:
        return v
    if v.startswith(EXTERNAL_PREFIX) and EXTERNAL_NAME_PATTERN.match(v[len(EXTERNAL_PREFIX):].strip()):
        return "external"
    return None


def external_name(value: object) -> str | None:
    """Name of an external cohort: 'Rome' for `external:Rome`, 'external' for plain `external`; None if internal."""
    if cohort_role(value) != "external":
        return None
    v = str(value).strip()
    return v[len(EXTERNAL_PREFIX):].strip() if v.startswith(EXTERNAL_PREFIX) else "external"
# --- end of cohort roles --------------------------------------------------------------------------------


def slugify(name: str) -> str:
    """A file-system and wildcard-safe name for a centre ("Centre A" -> "centre-a")."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return slug or "center"


def read_manifest(cohort_dir: str | Path) -> pd.DataFrame:
    """Read manifest.csv with IDs and paths as strings (so '007' stays '007').

    The header is read first with the csv module: pandas renames a repeated column (`lge`, `lge.1`) and the
    first copy would silently win, so repeated names are refused before pandas sees the file. An empty or
    header-only manifest is an error too: a cohort without patients is never what a user meant.
    """
    cohort_dir = Path(cohort_dir)
    path = cohort_dir / MANIFEST
    if not cohort_dir.is_dir():
        raise CohortError("cohort folder does not exist", path=cohort_dir)
    if not path.exists():
        raise CohortError("the cohort has no manifest.csv", path=path)
    if not path.is_file():
        raise CohortError("manifest.csv is a folder, not a file; expected a CSV file with one row per patient",
                          path=path)
    _check_header(path)
    try:
        df = pd.read_csv(path, dtype={"patient_id": str, "center": str, "vendor": str, "cohort": str,
                                      "scar_slices": str, "sex": str, **{c: str for c in FILE_COLUMNS}},
                         keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CohortError(f"manifest is not a readable CSV ({exc})", path=path) from None
    if df.empty:
        raise CohortError("manifest has a header but no patient rows", path=path)
    for col in MASK_COLUMNS:  # optional columns: absent = every mask to be predicted
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), dtype=object)
    return df


def has_path(value: object) -> bool:
    """Whether a manifest cell names a file (not empty, not NA)."""
    return value is not None and not pd.isna(value) and str(value).strip() != ""


def mask_source(policy: str, manual_present: bool) -> str:
    """'manual' or 'predicted': which mask of one stack the scar models use under `segmentation.masks`.

    auto: the manual mask where the manifest has one, else the predicted one; manual: always the manual one
    (validation refuses an empty mask cell); predicted: always the segmenter's.
    """
    if policy not in MASK_POLICIES:
        raise ValueError(f"segmentation.masks {policy!r} is not one of {MASK_POLICIES}")
    if policy == "predicted":
        return "predicted"
    if policy == "manual":
        return "manual"
    return "manual" if manual_present else "predicted"


def _check_header(path: Path) -> list[str]:
    """The manifest's column names as written; refuses an empty file and repeated or empty names."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise CohortError(f"manifest is not UTF-8 text ({exc})", path=path) from None
    except csv.Error as exc:
        raise CohortError(f"manifest is not a readable CSV ({exc})", path=path) from None
    if not header or all(h.strip() == "" for h in header):
        raise CohortError("manifest is empty (no header, no patients)", path=path)
    names = [h.strip() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1 and n})
    if repeated:
        raise CohortError(f"manifest repeats column(s) {', '.join(repeated)}; each column must appear once "
                          "(which copy holds the truth cannot be guessed)", path=path)
    return names


def resolve(cohort_dir: str | Path, relative: str) -> Path:
    return (Path(cohort_dir) / str(relative)).resolve()


def resolve_inside(cohort_dir: str | Path, relative: str, patient_id: str | None = None,
                   allow_outside: bool = False) -> Path:  # fmt: skip
    """A manifest path resolved (symlinks followed); refused when it leads outside the cohort folder.

    `../`, absolute paths and symlinks could otherwise make a cohort read any file on the machine and a cohort
    folder stop being a self-contained thing to share or archive. `allow_outside` (config
    `cohort.allow_outside_paths`, `cinescar validate --allow-outside-paths`) is the explicit opt-in.
    """
    path = resolve(cohort_dir, relative)
    root = Path(cohort_dir).resolve()
    if not allow_outside and not path.is_relative_to(root):
        raise CohortError(f"path {relative!r} leads outside the cohort folder (via '..', an absolute path or a "
                          "symlink); keep the files inside it, or opt in with cohort.allow_outside_paths: true "
                          "(cinescar validate --allow-outside-paths)", patient_id, Path(cohort_dir) / MANIFEST)
    return path


@contextmanager
def _keep_locale():
    """GDCM resets the process locale to "C" when it reads a DICOM series; later text I/O without an explicit
    encoding would then fail on non-ASCII text. Restore whatever was set before."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def geometry_mismatch(image: sitk.Image, mask: sitk.Image) -> str | None:
    """How a mask's grid differs from its image's (size, spacing, origin, direction), or None if it matches.

    The one geometry rule of the contract: cohort validation, screening and the ACDC importer apply it alike.
    """
    if image.GetSize() != mask.GetSize():
        return f"mask size {mask.GetSize()} differs from image size {image.GetSize()}"
    for name, va, vb in (("spacing", image.GetSpacing(), mask.GetSpacing()),
                         ("origin", image.GetOrigin(), mask.GetOrigin()),
                         ("direction", image.GetDirection(), mask.GetDirection())):  # fmt: skip
        scale = max(1.0, max(abs(v) for v in va) if va else 1.0)
        if not np.allclose(va, vb, atol=GEOMETRY_TOLERANCE * scale):
            return (f"mask {name} {tuple(round(v, 4) for v in vb)} differs from image {name} "
                    f"{tuple(round(v, 4) for v in va)}")
    return None


def read_volume(path: str | Path, patient_id: str | None = None, cache: dict | None = None) -> sitk.Image:
    """Read an image in any SimpleITK format, or a folder holding one DICOM series.

    `cache` (a dict the caller keeps for one exam) makes checking and preprocessing read each file once.
    """
    path = Path(path)
    if cache is not None:
        if path not in cache:
            cache[path] = read_volume(path, patient_id)
        return cache[path]
    if not path.exists():
        raise CohortError("file not found", patient_id, path)
    try:
        if path.is_dir():
            with _keep_locale():
                return _read_dicom_series(path, patient_id)
        return sitk.ReadImage(str(path))
    except CohortError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        raise CohortError(f"unreadable image ({first[:200]})", patient_id, path) from None


MULTI_PHASE = "a multi-phase cine: use cinescar import-dicom or screen the folder directly"


def _refuse_multiphase(path: Path, patient_id: str | None) -> None:
    """A folder holding several trigger times at one slice position is a cine (every phase), not one phase:
    SimpleITK would stack its phases as slices without an error, so it is refused by name (headers only)."""
    from cinescar.dicom.headers import scan_folder
    from cinescar.dicom.stack import trigger_times_per_position

    frames, _ = scan_folder(path)
    n = trigger_times_per_position(frames)
    if n > 1:
        raise CohortError(f"folder holds {n} trigger times at one slice position, {MULTI_PHASE} (ED and ES "
                          "are then picked from it)", patient_id, path)


def _read_dicom_series(path: Path, patient_id: str | None) -> sitk.Image:
    _refuse_multiphase(path, patient_id)
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise CohortError("folder holds no DICOM series", patient_id, path)
    if len(series) > 1:
        raise CohortError(f"folder holds {len(series)} DICOM series; expected one", patient_id, path)
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
    return reader.Execute()


def as_stack(img: sitk.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Array (slices, rows, cols) and spacing (x, y, z) of a 2D or 3D image (a 2D image is one slice)."""
    arr = sitk.GetArrayFromImage(img)
    spacing = tuple(float(s) for s in img.GetSpacing())
    if arr.ndim == 2:
        arr = arr[None]
        spacing = (spacing[0], spacing[1], 1.0)
    elif arr.ndim == 4 and arr.shape[0] == 1:  # a single time frame of a 4D file
        arr = arr[0]
        spacing = spacing[:3]
    return arr, spacing[:3]


def parse_scar_slices(value: object, patient_id: str, manifest: Path) -> list[int] | None:
    """`"3;4;5"` -> [3, 4, 5]; empty -> None (no per-slice reading)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return None
    try:
        return sorted({int(v) for v in str(value).replace(",", ";").split(";") if v.strip() != ""})
    except ValueError:
        raise CohortError(f"scar_slices {value!r} is not a ';'-separated list of slice indices",
                          patient_id, manifest) from None


def manifest_files(cohort_dir: str | Path, center_slug: str | None = None) -> list[str]:
    """Every existing file the manifest's rows name (of one centre, by slug), for the workflow's DAG.

    Snakemake reruns a rule when one of its inputs changes; only `manifest.csv` was one, so editing an image
    or a mask reran nothing. Validation takes all of these as inputs and each centre's preprocessing those of
    its centre. DICOM folders contribute their files. Missing files and paths outside the cohort folder are
    left out: validation reports them with patient and file, which a "missing input" from Snakemake would not.
    An unreadable manifest gives no files (validation reports it).
    """
    try:
        table = read_manifest(cohort_dir)
    except CohortError:
        return []
    if not set(FILE_COLUMNS) <= set(table.columns):
        return []
    if center_slug is not None and "center" in table.columns:
        table = table[table["center"].astype(str).map(slugify) == center_slug]
    root = Path(cohort_dir)
    out: list[str] = []
    for col in FILE_COLUMNS:
        for rel in table[col].dropna().astype(str) if col in table.columns else []:
            if not rel.strip():
                continue
            path = root / rel
            try:
                resolve_inside(cohort_dir, rel)
            except CohortError:
                continue
            if path.is_file():
                out.append(str(path))
            elif path.is_dir():
                out.extend(str(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith("."))
    return sorted(set(out))


def checked_patient_id(patient_id: object, source: str | Path | None = None) -> str:
    """A patient ID that may name output files (`{patient_id}_ED_03_gradcam.png`): pseudonymous pattern only.

    An ID such as `../../x` would otherwise write outside the folder the user chose, and an identifying one
    (`Doe, John`) would reach file names and logs.
    """
    pid = str(patient_id) if patient_id is not None else ""
    if not PATIENT_ID_PATTERN.match(pid):
        raise CohortError(f"patient_id {pid[:60]!r} must match [A-Za-z0-9_-]+ (a pseudonymous ID; it names output "
                          "files)", None, source)
    return pid


def inside(root: str | Path, path: str | Path, patient_id: str | None = None, what: str = "folder") -> Path:
    """`path` resolved (symlinks followed), refused unless it lies inside `root` (resolved too)."""
    resolved = (Path(root) / Path(path)).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise CohortError(f"{Path(path).name!r} leads outside the {what} it must stay in", patient_id, path)
    return resolved
