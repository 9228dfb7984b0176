"""`cinescar import-dicom ROOT --out COHORT`: one folder of DICOM files per patient -> a cohort in the contract.

Per patient (folder name = patient ID; any file layout inside) the short-axis cine is read
(`cinescar.dicom.read_exam`), ED and ES are chosen, and the two phases are written as NIfTI under `images/`
with the cine's patient-coordinate geometry. Masks are written only when a `segmenter` is given (the
model's; otherwise the columns stay empty for the workflow to segment). `phase_selection.csv` records, per
patient and phase, the trigger time, the volume curve and how ED/ES were chosen. Labels and other manifest
columns come from `--labels CSV` (patient_id, lge, optional center, vendor, cohort, clinical columns,
ed_phase/es_phase). Every patient is read before anything is written, and all their problems are reported
together; `manifest.csv` is written last, so an interrupted import never looks complete.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cinescar.cohort.contract import COHORTS, MANIFEST, MANIFEST_COLUMNS, PATIENT_ID_PATTERN
from cinescar.dicom.exam import DicomExam, read_exam
from cinescar.dicom.phases import DEFAULT_MID_SLICES, LvVolume, parse_phases, write_phase_csv
from cinescar.errors import CinescarError, CohortError, ConfigError
from cinescar.io import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

Segmenter = Callable[[sitk.Image], sitk.Image]
"""Label image (same grid) of one phase's 3D stack; `myocardium_label` marks the myocardium."""
PHASE_CSV = "phase_selection.csv"
SUMMARY = "import_summary.json"
DEFAULT_CENTER = "unknown"
LABEL_PHASE_COLUMNS = ("ed_phase", "es_phase")


class ImportFailed(CinescarError):
    """Several patients could not be imported; str() lists each problem (patient, file, reason)."""

    def __init__(self, problems: list[CohortError]):
        self.problems = problems
        super().__init__("\n".join([f"{len(problems)} patient(s) could not be imported (nothing written):",
                                    *(f"  - {p}" for p in problems)]))


def patient_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise CohortError("DICOM root folder does not exist", path=root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise CohortError("DICOM root holds no patient folders (one subfolder per patient expected)", path=root)
    for f in folders:
        if not PATIENT_ID_PATTERN.match(f.name):
            raise CohortError("patient folder name is not a valid patient ID ([A-Za-z0-9_-]+)", f.name, f.name)
    return folders


def read_labels(path: str | Path | None) -> pd.DataFrame | None:
    """The `--labels` table, indexed by patient_id (as strings); None when not given."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise CohortError("labels file not found", path=path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CohortError(f"labels file is not a readable CSV ({exc})", path=path) from None
    if "patient_id" not in table.columns:
        raise CohortError("labels file has no patient_id column", path=path)
    repeated = sorted(table["patient_id"][table["patient_id"].duplicated()].unique())
    if repeated:
        raise CohortError(f"labels file repeats patient(s) {', '.join(repeated)}", path=path)
    return table.set_index("patient_id")


def _phases_for(pid: str, labels: pd.DataFrame | None, phases: Mapping[str, int] | None) -> dict[str, int]:
    out = dict(phases or {})
    if labels is not None and pid in labels.index:
        for col in LABEL_PHASE_COLUMNS:
            value = str(labels.at[pid, col]).strip() if col in labels.columns else ""
            if value:
                try:
                    out[col.split("_")[0]] = int(value)
                except ValueError:
                    raise CohortError(f"labels {col} {value!r} is not a phase index", pid) from None
    return out


def _mask(image: sitk.Image, segmenter: Segmenter, label: int, pid: str, phase: str) -> sitk.Image:
    labels = segmenter(image)
    if labels.GetSize() != image.GetSize():
        raise CohortError(f"{phase}: segmenter returned size {labels.GetSize()} for an image of {image.GetSize()}",
                          pid)
    mask = sitk.GetImageFromArray((sitk.GetArrayFromImage(labels) == label).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def import_dicom(root: str | Path, out: str | Path, *, labels: str | Path | None = None,
                 series: Sequence[int] | None = None, phases: Mapping[str, int] | None = None,
                 lv_volume_ml: LvVolume | None = None, segmenter: Segmenter | None = None,
                 myocardium_label: int = 1, center: str | None = None, vendor: str | None = None,
                 cohort: str = "internal", n_mid_slices: int | None = DEFAULT_MID_SLICES) -> dict:
    """Import every patient folder of `root` into the cohort folder `out`; returns the import summary."""
    started = time.perf_counter()
    root, out = Path(root), Path(out)
    if cohort not in COHORTS:
        raise ConfigError(f"cohort must be one of {', '.join(COHORTS)}, got {cohort!r}")
    if (out / MANIFEST).exists():
        raise CohortError("folder already holds a cohort; choose a new folder", path=out / MANIFEST)
    table = read_labels(labels)
    folders = patient_folders(root)
    exams: dict[str, DicomExam] = {}
    problems: list[CohortError] = []
    for folder in folders:
        pid = folder.name
        try:
            exams[pid] = read_exam(folder, pid, lv_volume_ml=lv_volume_ml, phases=_phases_for(pid, table, phases),
                                   series=series, n_mid_slices=n_mid_slices)
        except CohortError as exc:
            problems.append(exc)
    if problems:
        raise ImportFailed(problems)
    unlabelled = [] if table is None else [pid for pid in exams if pid not in table.index]
    without_folder = [] if table is None else sorted(set(table.index) - set(exams))

    rows, patients = [], []
    for pid, exam in exams.items():
        extra = table.loc[pid].to_dict() if table is not None and pid in table.index else {}
        row = {c: "" for c in MANIFEST_COLUMNS}
        row.update({k: v for k, v in extra.items() if k not in LABEL_PHASE_COLUMNS})
        row["patient_id"] = pid
        row["center"] = center or extra.get("center") or DEFAULT_CENTER
        row["vendor"] = vendor or extra.get("vendor") or _manufacturer(exam) or "unknown"
        row["cohort"] = extra.get("cohort") or cohort
        for phase, image in exam.images.items():
            rel = f"images/{pid}_{phase}.nii.gz"
            atomic_write(out / rel, lambda p, im=image: sitk.WriteImage(im, str(p)))
            row[f"{phase.lower()}_image"] = rel
            if segmenter is not None:
                mrel = f"masks/{pid}_{phase}.nii.gz"
                mask = _mask(image, segmenter, myocardium_label, pid, phase)
                atomic_write(out / mrel, lambda p, m=mask: sitk.WriteImage(m, str(p)))
                row[f"{phase.lower()}_mask"] = mrel
        rows.append(row)
        sel = exam.selection
        patients.append({"patient_id": pid, "phases": exam.cine.n_phases, "slices": exam.cine.n_slices,
                         "series": [n for n, _ in exam.cine.series], "ed": sel.ed, "es": sel.es,
                         "ed_method": sel.ed_method, "es_method": sel.es_method, "warnings": exam.cine.warnings})
    columns = MANIFEST_COLUMNS + [c for c in (table.columns if table is not None else [])
                                  if c not in MANIFEST_COLUMNS and c not in LABEL_PHASE_COLUMNS]
    manifest = pd.DataFrame(rows).reindex(columns=columns, fill_value="")
    summary = {"source": root.name, "imported": len(rows), "masks": segmenter is not None,
               "without_label_row": unlabelled, "labels_without_folder": without_folder, "patients": patients,
               "seconds": round(time.perf_counter() - started, 2)}
    atomic_write(out / PHASE_CSV, lambda p: write_phase_csv([e.selection for e in exams.values()], p))
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    atomic_write(out / MANIFEST, lambda p: manifest.to_csv(p, index=False))  # last: marks completion
    log.info("DICOM import: %d patient(s) in %.1f s", len(rows), summary["seconds"])
    return summary


def _manufacturer(exam: DicomExam) -> str:
    """The scanner's manufacturer (not an identifier): the manifest's vendor when none is given."""
    try:
        return str(exam.cine.source_datasets(exam.selection.ed)[0].get("Manufacturer", "") or "").strip()
    except Exception:  # noqa: BLE001 - a missing vendor is not worth failing the import
        return ""


def parse_series(text: str | None) -> list[int] | None:
    """`"7"` or `"7,8"` -> [7, 8] (the --series of import-dicom and screen); None/empty -> None."""
    if text is None or not str(text).strip():
        return None
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise CinescarError(f"--series {text!r}: expected series number(s), e.g. 7 or 7,8") from None


def import_dicom_api(root: str | Path, out: str | Path, *, labels: str | Path | None = None,
                     series: str | Sequence[int] | None = None, phases: str | Mapping[str, int] | None = None,
                     lv_volume_ml: LvVolume | None = None, segmenter: Segmenter | None = None,
                     center: str | None = None, vendor: str | None = None, cohort: str = "internal") -> dict:
    """`cinescar import-dicom` as a function; `series`/`phases` may be the command line's text."""
    if isinstance(series, str):
        series = parse_series(series)
    if isinstance(phases, str):
        phases = parse_phases(phases)
    return import_dicom(root, out, labels=labels, series=series, phases=phases, lv_volume_ml=lv_volume_ml,
                        segmenter=segmenter, center=center, vendor=vendor, cohort=cohort)
