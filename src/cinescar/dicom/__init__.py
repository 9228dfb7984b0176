"""DICOM cine in, DICOM SEG and Secondary Capture out (issue 23).

A scanner's short-axis cine holds every phase of every slice, as one series, one series per slice or
breath-hold, or one enhanced multi-frame file. This package finds the (phase, slice) grid in any of these
layouts from the headers alone (`headers`, `stack`), reads the pixels once (`reader`), picks end-diastole and
end-systole (`phases`), and writes the results back as DICOM (`seg`). `importer` turns a folder of exams
into a cohort in the project's contract. Anything that cannot be stacked without guessing is a
`CohortError` naming the patient and the file; no patient identifier is logged.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {"Cine": "reader", "read_cine": "reader", "DicomExam": "exam", "read_exam": "exam",
            "PhaseSelection": "phases", "parse_phases": "phases", "select_phases": "phases",
            "write_seg": "seg", "write_secondary_capture": "seg", "import_dicom_api": "importer"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Exports load on first use, so `cinescar --help` does not import pydicom, highdicom and SimpleITK."""
    if name in _EXPORTS:
        return getattr(import_module(f"cinescar.dicom.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
