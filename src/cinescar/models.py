"""The one home of the study's model names: which models exist, what they are called, what kind each is.

Every table, figure, MLflow key and bundle entry names a model by the short key below; the report shows its
label. Import these instead of restating them (evaluation, plots, report, bundle, screening).

| kind | models | what it is |
|---|---|---|
| image | radiomics, dl, fusion | the paper's three models (Fahmy et al., JCMR 2022), image level, patient = max over images |
| clinical | clinical | logistic regression on the manifest's clinical variables (patient level, `clinical.variables`) |
| combined | radiomics_clinical, dl_clinical, fusion_clinical | an image model's patient probability (out of fold) + the clinical variables |
| control | shape_control, slice_control | shortcut controls: mask shape radiomics only; slice position only |

Keys are MLflow-safe (letters, digits, underscores): metric names are `{model}.fold{f}.{cohort}.{op}.{metric}`.
"""

from __future__ import annotations

IMAGE_MODELS: tuple[str, ...] = ("radiomics", "dl", "fusion")
"""The paper's models: the ones the bundle ships and `cinescar screen` applies to a new exam."""
CLINICAL = "clinical"
COMBINED: dict[str, str] = {m: f"{m}_clinical" for m in IMAGE_MODELS}
"""image model -> its combined (image probability + clinical variables) model."""
CONTROLS: tuple[str, ...] = ("shape_control", "slice_control")
MODELS: tuple[str, ...] = (*IMAGE_MODELS, CLINICAL, *COMBINED.values(), *CONTROLS)
"""Every model of the study, in report order."""

MODEL_LABELS: dict[str, str] = {
    "radiomics": "Radiomics",
    "dl": "DL",
    "fusion": "DL-Radiomics",
    CLINICAL: "Clinical",
    **{c: f"{lbl} + clinical" for c, lbl in zip(COMBINED.values(), ("Radiomics", "DL", "DL-Radiomics"), strict=True)},
    "shape_control": "Control: mask shape only",
    "slice_control": "Control: slice position only",
}
MODEL_KINDS: dict[str, str] = {
    **{m: "image" for m in IMAGE_MODELS},
    CLINICAL: "clinical",
    **{c: "combined" for c in COMBINED.values()},
    **{c: "control" for c in CONTROLS},
}
MODEL_COLORS: dict[str, str] = {
    "radiomics": "#1f77b4", "dl": "#ff7f0e", "fusion": "#2ca02c", CLINICAL: "#7f7f7f",
    "radiomics_clinical": "#aec7e8", "dl_clinical": "#ffbb78", "fusion_clinical": "#98df8a",
    "shape_control": "#9467bd", "slice_control": "#8c564b",
}  # fmt: skip


def label(model: str) -> str:
    """The report's name of a model (the key itself for a model this module does not know)."""
    return MODEL_LABELS.get(model, model)
