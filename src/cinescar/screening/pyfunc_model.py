"""The MLflow `pyfunc` model of a bundle, "from code": the file MLflow stores with the logged model and runs
when it loads the model (it ends with `mlflow.models.set_model`).

Kept apart from the registration code (`cinescar.screening.pyfunc`) so that loading the model runs only
what serving needs: this class, the bundle loader and the screening of an exam. The pyfunc layer holds no
pickle; the bundle's members are loaded without running code (`cinescar.screening.members`) once their
hashes check out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd

ARTIFACT = "bundle"
"""Name of the model's one artifact: the bundle folder."""


class ScreeningModel(mlflow.pyfunc.PythonModel):
    """Screens exams (one per input row) with the bundle shipped as the model's `bundle` artifact."""

    def load_context(self, context) -> None:
        from cinescar.errors import CinescarError
        from cinescar.screening.bundle import load_bundle

        config = dict(getattr(context, "model_config", None) or {})
        digest = config.get("bundle_sha256")
        if not digest:  # a model logged without it: the shipped bundle.json could have been swapped unnoticed
            raise CinescarError("this pyfunc model records no bundle digest (model_config bundle_sha256); "
                                "register the bundle again with this cinescar version")
        self._bundle = load_bundle(context.artifacts[ARTIFACT], expected_digest=digest)
        self._exam_root = Path(config.get("exam_root") or Path.cwd())

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from cinescar.cohort.contract import FILE_COLUMNS, checked_patient_id, inside
        from cinescar.errors import CinescarError
        from cinescar.screening.screen import INPUT_COLUMNS, OUTPUT_COLUMNS, Exam, result_row, screen_exam

        frame = pd.DataFrame(model_input)
        missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
        if missing:
            raise CinescarError(f"screening input lacks column(s) {missing}; expected {INPUT_COLUMNS}")
        rows = []
        for rec in frame[INPUT_COLUMNS].itertuples(index=False):
            pid = checked_patient_id(rec.patient_id)
            # exam paths stay inside exam_root: a request must not make the server read any file it can
            files = {c: inside(self._exam_root, str(getattr(rec, c)), pid, "exam_root") for c in FILE_COLUMNS}
            exam = Exam(patient_id=pid, files=files)
            rows.append(result_row(screen_exam(self._bundle, exam)))
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


mlflow.models.set_model(ScreeningModel())
