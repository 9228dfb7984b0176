"""Reference and control models beside the paper's three (docs/evaluation.md, "Baselines and controls").

- `clinical`: logistic regression on the manifest's clinical variables, per fold (the clinical baseline);
- `combined`: an image model's out-of-fold patient probability + the clinical variables (incremental value);
- `controls`: shortcut controls — mask shape radiomics only, slice position only;
- `run`: the workflow's file-in/file-out wrappers with MLflow logging.

Model names and labels: `cinescar.models`.
"""
