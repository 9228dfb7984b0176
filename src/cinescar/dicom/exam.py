"""One DICOM exam folder -> ED and ES SimpleITK images + the phase selection: what screen/validate need.

The single entry the contract's DICOM path, `cinescar screen` and `import-dicom` go through, so that all
three stack and choose phases the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import SimpleITK as sitk

from cinescar.dicom.phases import DEFAULT_MID_SLICES, LvVolume, PhaseSelection, select_phases
from cinescar.dicom.reader import Cine, read_cine


@dataclass
class DicomExam:
    cine: Cine
    selection: PhaseSelection
    ed_image: sitk.Image
    es_image: sitk.Image

    @property
    def images(self) -> dict[str, sitk.Image]:
        """{"ED": ..., "ES": ...}, the keys of `cinescar.cohort.contract.PHASES`."""
        return {"ED": self.ed_image, "ES": self.es_image}


def read_exam(folder: str | Path, patient_id: str, *, lv_volume_ml: LvVolume | None = None,
              phases: Mapping[str, int] | None = None, series: Sequence[int] | None = None,
              n_mid_slices: int | None = DEFAULT_MID_SLICES) -> DicomExam:
    """Read a cine exam folder and pick ED/ES (`select_phases`); raises `CohortError` on bad input."""
    phases = dict(phases or {})
    cine = read_cine(folder, patient_id, series=series, require_trigger=not {"ed", "es"} <= set(phases))
    selection = select_phases(cine, lv_volume_ml=lv_volume_ml, phases=phases, n_mid_slices=n_mid_slices)
    return DicomExam(cine, selection, cine.phase_image(selection.ed), cine.phase_image(selection.es))
