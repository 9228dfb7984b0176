"""Pick end-diastole (ED) and end-systole (ES) from a cine, and record how each was chosen.

ED = the phase with the smallest trigger time (the R wave starts the cycle; ~0 ms). ES = the phase with the
smallest LV cavity volume, measured by an injected `lv_volume_ml(image) -> float` (the segmenter of the
issue "Contours from the images"): it is given, for every phase, the same sub-stack of a few
mid-ventricular slices as a 3D SimpleITK image in patient coordinates, so the curve costs
`mid_slices x phases` 2D segmentations rather than the whole 4D cine. The volume over the mid slices is a
partial volume; only its minimum matters. Either phase may be given explicitly (`--phases ed=I,es=J`,
0-based in the cine's time order), which is also the only way when the exam has no trigger times.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import SimpleITK as sitk

from cinescar.errors import CinescarError, CohortError

LvVolume = Callable[[sitk.Image], float]
"""LV cavity volume (ml) of one phase's (sub-)stack, a 3D image (x, y, slice) in LPS patient coordinates."""

DEFAULT_MID_SLICES = 3
PHASE_CSV_COLUMNS = ["patient_id", "phase", "trigger_time_ms", "lv_volume_ml", "is_ed", "is_es", "ed_method",
                     "es_method", "volume_slices"]


@dataclass
class PhaseSelection:
    """Which phases are ED and ES, and the evidence: trigger times, the volume curve, the rule used."""

    patient_id: str
    n_phases: int
    ed: int
    es: int
    ed_method: str  # "smallest trigger time" or "given"
    es_method: str  # "smallest LV cavity volume" or "given"
    trigger_times_ms: list[float | None]
    lv_volume_ml: list[float] | None  # per phase over `volume_slices`; None when not measured
    volume_slices: list[int] | None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def rows(self) -> list[dict]:
        """One row per phase, the columns of `phase_selection.csv`."""
        slices = ";".join(map(str, self.volume_slices)) if self.volume_slices else ""
        out = []
        for p in range(self.n_phases):
            t = self.trigger_times_ms[p]
            v = self.lv_volume_ml[p] if self.lv_volume_ml is not None else None
            out.append({"patient_id": self.patient_id, "phase": p,
                        "trigger_time_ms": "" if t is None else f"{t:.2f}",
                        "lv_volume_ml": "" if v is None else f"{v:.4f}", "is_ed": int(p == self.ed),
                        "is_es": int(p == self.es), "ed_method": self.ed_method, "es_method": self.es_method,
                        "volume_slices": slices})
        return out


def write_phase_csv(selections: list[PhaseSelection], path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=PHASE_CSV_COLUMNS)
        writer.writeheader()
        for sel in selections:
            writer.writerows(sel.rows())
    return path


def parse_phases(text: str | None) -> dict[str, int] | None:
    """`"ed=0,es=9"` -> {"ed": 0, "es": 9}; either key may be left out; None/empty -> None."""
    if text is None or not str(text).strip():
        return None
    out: dict[str, int] = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("ed", "es") or key in out:
            raise CinescarError(f"--phases item {item.strip()!r}: expected ed=I,es=J (0-based phase indices)")
        try:
            out[key] = int(value)
        except ValueError:
            raise CinescarError(f"--phases {key}={value.strip()!r} is not a phase index") from None
    return out


def mid_slices(n_slices: int, count: int | None = DEFAULT_MID_SLICES) -> list[int]:
    """The `count` central slices (all when count is None or exceeds the stack)."""
    if count is None or count >= n_slices:
        return list(range(n_slices))
    start = (n_slices - count) // 2
    return list(range(start, start + count))


def select_phases(cine, lv_volume_ml: LvVolume | None = None, phases: Mapping[str, int] | None = None,
                  n_mid_slices: int | None = DEFAULT_MID_SLICES) -> PhaseSelection:
    """ED and ES of `cine` (a `cinescar.dicom.Cine`) by the module's rule; see the module docstring."""
    phases = dict(phases or {})
    n = cine.n_phases
    for key, value in phases.items():
        if not 0 <= value < n:
            raise CohortError(f"--phases {key}={value} is outside the cine's phases 0..{n - 1}", cine.patient_id,
                              cine.folder.name)
    times = [None if not np.isfinite(t) else float(t) for t in cine.trigger_times_ms]
    if "ed" in phases:
        ed, ed_method = phases["ed"], "given"
    elif all(t is not None for t in times):
        ed, ed_method = int(np.argmin(times)), "smallest trigger time"
    else:
        raise CohortError("the cine has no trigger times, so ED must be given (--phases ed=I,es=J)",
                          cine.patient_id, cine.folder.name)
    volumes, used = None, None
    if "es" in phases:
        es, es_method = phases["es"], "given"
    elif lv_volume_ml is not None:
        used = mid_slices(cine.n_slices, n_mid_slices)
        volumes = [float(lv_volume_ml(cine.phase_image(p, used))) for p in range(n)]
        if not all(np.isfinite(volumes)):
            raise CohortError(f"the LV volume curve has non-finite values ({volumes})", cine.patient_id,
                              cine.folder.name)
        es, es_method = int(np.argmin(volumes)), "smallest LV cavity volume"
    else:
        raise CohortError("ES needs an LV volume (a segmenter, e.g. a model bundle) or --phases es=J",
                          cine.patient_id, cine.folder.name)
    if ed == es:
        raise CohortError(f"ED and ES are the same phase ({ed}); check the volume curve or --phases",
                          cine.patient_id, cine.folder.name)
    return PhaseSelection(patient_id=cine.patient_id, n_phases=n, ed=ed, es=es, ed_method=ed_method,
                          es_method=es_method, trigger_times_ms=times, lv_volume_ml=volumes, volume_slices=used)
