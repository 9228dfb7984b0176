"""Files in, files out, MLflow on the side: the deployment case (issue 22) as the workflow runs it.

Each function is one job: it takes the rule's declared inputs, outputs and params and nothing else; output
names live in `workflow/rules/segmentation.smk`. The comparison itself is `screening/deployment.py`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cinescar import tracking
from cinescar.cohort.contract import FILE_COLUMNS, IMAGE_COLUMNS, MASK_COLUMNS, PHASES, has_path, read_manifest, \
    resolve, slugify
from cinescar.errors import CinescarError
from cinescar.io import atomic_write
from cinescar.cohort.splits import load_splits
from cinescar.screening.bundle import MODELS, load_bundle
from cinescar.screening.deployment import PATIENT_COLUMNS, compare_masks, feature_icc, icc_summary
from cinescar.screening.exam import Exam

log = logging.getLogger(__name__)
TAGS = {"stage": "segmentation", "part": "deployment"}
FEATURE_COLUMNS = ["patient_id", "role", "image_id", "feature", "manual", "predicted"]


def _roles(splits: dict) -> dict[str, tuple[str, int | None]]:
    """patient -> (role, the fold whose model never saw it: development only)."""
    roles: dict[str, tuple[str, int | None]] = {p: ("test", None) for p in splits["test"]}
    roles |= {p: ("external", None) for p in splits["external"]}
    for f in splits["folds"]:
        roles |= {p: ("development", int(f["fold"])) for p in f["val"]}
    return roles


def _probabilities(result: dict, fold: int | None) -> dict[str, float]:
    """The final model's patient probability, or fold `fold`'s model's (out of fold) for a development patient."""
    out = {}
    for model in MODELS:
        m = result["models"][model]
        p = m["probability"] if fold is None else m["fold_probabilities"].get(str(fold))
        out[model] = float("nan") if p is None else float(p)
    return out


def selected_radiomics(bundle) -> list[str]:
    """The radiomics features the shipped fold models select (their classifiers read), DL columns left out: what
    the ICC is about. (The models take every feature in, to scale it; only the selected ones reach a decision.)"""
    from cinescar.fusion.model import DL_COLUMN

    fitted = [*bundle.radiomics.values(), *bundle.fusion.values()]
    return list(dict.fromkeys(n for m in fitted for n in m.selected if not DL_COLUMN.match(n)))


def deployment_center_job(inputs: dict, outputs: dict, params: dict, center: str) -> pd.DataFrame:
    """Screen one centre's manually contoured patients twice with the bundle: manual masks, then the segmenter's
    (cross-fitted for development patients, the ensemble's for held-out ones); probabilities and features."""
    import torch

    from cinescar.screening.screen import screen_exam

    torch.set_num_threads(int(params["cfg"]["segmentation"]["threads"]))
    bundle = load_bundle(Path(inputs["bundle"]).parent)
    selected = selected_radiomics(bundle)
    roles = _roles(load_splits(inputs["splits"]))
    cohort_dir = Path(inputs["manifest"]).parent
    masks_dir = Path(inputs["masks"])
    patients, features, skipped = [], [], []
    for _, row in read_manifest(cohort_dir).iterrows():
        if slugify(row["center"]) != center:
            continue
        pid = str(row["patient_id"]).strip()
        if not all(has_path(row[c]) for c in MASK_COLUMNS):
            skipped.append(pid)  # nothing manual to compare with
            continue
        role, fold = roles[pid]
        manual = {c: resolve(cohort_dir, row[c]) for c in FILE_COLUMNS}
        predicted = {c: resolve(cohort_dir, row[c]) for c in IMAGE_COLUMNS}
        predicted |= {mask: masks_dir / f"{pid}_{phase}.nii.gz" for phase, (_, mask) in PHASES.items()}
        probs, tables = {}, {}
        for which, files in (("manual", manual), ("predicted", predicted)):
            details: dict = {}
            try:
                result = screen_exam(bundle, Exam(pid, files, cohort_dir / "manifest.csv"), details=details)
            except CinescarError as exc:  # e.g. no myocardium left on the predicted masks: counted, not hidden
                log.warning("patient %s, %s masks: not scored (%s)", pid, which, exc)
                probs[which] = dict.fromkeys(MODELS, float("nan"))
                continue
            probs[which] = _probabilities(result, fold)
            tables[which] = details["radiomics"].set_index("image_id")
        for model in MODELS:
            patients.append({"patient_id": pid, "role": role, "fold": -1 if fold is None else fold,
                             "lge": int(float(row["lge"])), "model": model, "cutoff": bundle.cutoff(model),
                             "prob_manual": probs["manual"][model], "prob_predicted": probs["predicted"][model]})
        if len(tables) == 2:  # the images both masks kept (the predicted mask may keep another set of slices)
            both = tables["manual"].index.intersection(tables["predicted"].index)
            pair = pd.DataFrame({which: t.loc[both, selected].astype(float).stack()
                                 for which, t in tables.items()})
            features.append(pair.rename_axis(["image_id", "feature"]).reset_index()
                            .assign(patient_id=pid, role=role)[FEATURE_COLUMNS])
    if skipped:
        log.info("centre %s: %d patients without manual masks are not part of the deployment case", center,
                 len(skipped))
    table = pd.DataFrame(patients, columns=PATIENT_COLUMNS)
    feats = pd.concat(features, ignore_index=True) if features else pd.DataFrame(columns=FEATURE_COLUMNS)
    atomic_write(outputs["patients"], lambda tmp: table.to_parquet(tmp, index=False))
    atomic_write(outputs["features"], lambda tmp: feats.to_parquet(tmp, index=False))
    return table


def deployment_job(inputs: dict, outputs: dict, params: dict) -> dict:
    """`deployment.csv` (per model and role: AUC manual vs predicted, DeLong, agreement, |delta p|),
    `deployment_patients.csv` and `feature_icc.csv`; the headline figures to MLflow."""
    patients = pd.concat([pd.read_parquet(p) for p in inputs["patients"]], ignore_index=True)
    feats = pd.concat([pd.read_parquet(p) for p in inputs["features"]], ignore_index=True)
    if patients.empty:
        raise CinescarError("the deployment case has no patient with manual masks to compare with; set "
                            "segmentation.deployment: false for a cohort without manual masks")
    comparison = compare_masks(patients)
    icc = feature_icc(feats)
    summary = icc_summary(icc)
    atomic_write(outputs["comparison"], lambda tmp: comparison.to_csv(tmp, index=False))
    atomic_write(outputs["patients"], lambda tmp: patients.to_csv(tmp, index=False))
    atomic_write(outputs["icc"], lambda tmp: icc.to_csv(tmp, index=False))
    metrics = {f"icc_{k}": float(v) for k, v in summary.items()}
    for r in comparison.itertuples(index=False):
        key = f"{r.model}_{re.sub(r'[^a-z0-9]+', '_', r.role).strip('_')}"
        metrics |= {f"deployment_delta_auc_{key}": float(r.delta_auc),
                    f"deployment_agreement_{key}": float(r.decision_agreement)}
    with tracking.start_run("segmentation-deployment", TAGS) as run:
        run.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    log.info("deployment case: %d patients, %d features (ICC >= 0.75 for %.0f %%)", patients["patient_id"].nunique(),
             summary["features"], 100 * summary["share_icc_good"] if summary["features"] else float("nan"))
    return {"comparison": comparison, "icc": summary}
