"""The cohort contract: what a user brings, and how it is read.

A cohort is a folder with `manifest.csv` (one row per patient) and, per patient, short-axis cine stacks at
end-diastole (ED) and end-systole (ES) with matching myocardium masks. Everything that reads user files goes
through this module, so that an unreadable file is always reported as a CohortError naming patient and
file rather than as an ITK exception.
"""

from __future__ import annotations

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
CLINICAL_NUMERIC = ["age", "height", "weight", "BMI", "LVEDV", "LVESV", "SV", "LVEF", "CO", "LVM", "MWT"]
CLINICAL_CATEGORICAL = ["sex"]
COHORTS = ("internal", "external")
PATIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


def slugify(name: str) -> str:
    """A file-system and wildcard-safe name for a centre ("Centre A" -> "centre-a")."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return slug or "center"


def read_manifest(cohort_dir: str | Path) -> pd.DataFrame:
    """Read manifest.csv with IDs and paths as strings (so '007' stays '007')."""
    path = Path(cohort_dir) / MANIFEST
    if not Path(cohort_dir).is_dir():
        raise CohortError("cohort folder does not exist", path=cohort_dir)
    if not path.exists():
        raise CohortError("the cohort has no manifest.csv", path=path)
    try:
        df = pd.read_csv(path, dtype={"patient_id": str, "center": str, "vendor": str, "cohort": str,
                                      "scar_slices": str, "sex": str, **{c: str for c in FILE_COLUMNS}},
                         keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CohortError(f"manifest is not a readable CSV ({exc})", path=path) from None
    return df


def resolve(cohort_dir: str | Path, relative: str) -> Path:
    return (Path(cohort_dir) / str(relative)).resolve()


@contextmanager
def _keep_locale():
    """GDCM resets the process locale to "C" when it reads a DICOM series; later text I/O without an explicit
    encoding would then fail on non-ASCII text. Restore whatever was set before."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


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


def _read_dicom_series(path: Path, patient_id: str | None) -> sitk.Image:
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
