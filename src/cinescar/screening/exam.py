"""One exam as screening sees it (its own module: the exam readers -- folders, manifests, DICOM cines -- and
the screening itself all use it without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Exam:
    """One patient's ED/ES short-axis stacks and myocardium masks (keys: the manifest's file columns; masks may
    be missing, then the bundle's segmenter draws them)."""

    patient_id: str
    files: dict[str, Path]
    source: Path | None = None
