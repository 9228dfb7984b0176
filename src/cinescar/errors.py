"""Errors a user is meant to read.

Everything that goes wrong because of the *input* (a cohort, a config, an exam) is raised as one of these,
so the CLI and the workflow scripts can print one clear line instead of a stack trace from deep inside
SimpleITK or pandas.
"""

from __future__ import annotations

from pathlib import Path


class CinescarError(Exception):
    """A problem the user can fix (bad input, bad config); printed without a traceback."""


class ConfigError(CinescarError):
    """The configuration does not satisfy `config/schema.yaml` or is internally inconsistent."""


class CohortError(CinescarError):
    """A cohort input problem, always naming the patient and the file it concerns when known."""

    def __init__(self, message: str, patient_id: str | None = None, path: str | Path | None = None):
        self.message = message
        self.patient_id = patient_id
        self.path = str(path) if path is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.patient_id is not None:
            where.append(f"patient {self.patient_id}")
        if self.path is not None:
            where.append(f"file {self.path}")
        return f"{', '.join(where)}: {self.message}" if where else self.message
