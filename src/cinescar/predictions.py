"""The per-image predictions table: what every model stage (radiomics, DL, DL-Radiomics, the baselines)
writes and the evaluation reads (docs/architecture.md, "Predictions").

One home so that a stage and the evaluation cannot disagree on a column; kept at the bottom of the import
graph (no dependencies) so a stage can import it without importing the evaluation.
"""

from __future__ import annotations

PREDICTION_COLUMNS = ["image_id", "patient_id", "fold", "split", "dev_selected", "lge", "prob"]
"""One row per (fold, image): its split in that fold (`val`, `test`, `external`), the patient's LGE label and
the model's probability."""
