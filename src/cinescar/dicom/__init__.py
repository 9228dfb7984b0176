"""DICOM cine in, DICOM SEG and Secondary Capture out (issue 23).

A scanner's short-axis cine holds every phase of every slice, as one series, one series per slice or
breath-hold, or one enhanced multi-frame file. This package finds the (phase, slice) grid in any of these
layouts from the headers alone (`headers`, `stack`), reads the pixels once (`reader`), picks end-diastole and
end-systole (`phases`), and writes the results back as DICOM (`seg`). `importer` turns a folder of exams
into a cohort in the project's contract. Anything that cannot be stacked without guessing is a
`CohortError` naming the patient and the file; no patient identifier is logged.
"""

from __future__ import annotations

from cinescar.dicom.exam import DicomExam, read_exam
from cinescar.dicom.phases import PhaseSelection, parse_phases, select_phases
from cinescar.dicom.reader import Cine, read_cine

__all__ = ["Cine", "DicomExam", "PhaseSelection", "parse_phases", "read_cine", "read_exam", "select_phases"]
