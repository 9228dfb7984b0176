"""Files in, files out, MLflow on the side: the segmentation stage as the workflow runs it.

Each function is one job: it takes the rule's declared inputs, outputs and params (the scripts pass
`dict(snakemake.input)`, `dict(snakemake.output)` and `snakemake.params`) and nothing else. Output names live
in `workflow/rules/segmentation.smk` only. The maths lives in the modules below this one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cinescar import tracking
from cinescar.cohort.contract import PHASES, cohort_role, read_manifest, slugify
from cinescar.errors import CinescarError
from cinescar.io import atomic_write
from cinescar.cohort.splits import load_splits
from cinescar.preprocessing.store import predicted_mask_path
from cinescar.segmentation.crossfit import ENSEMBLE, crossfit_assignment, predicting_network
from cinescar.segmentation.data import manual_mask_path, read_stack_fields
from cinescar.segmentation.field import field_to_labels
from cinescar.segmentation.inference import FieldSettings, Segmenter
from cinescar.segmentation.labels import LABELS, MYOCARDIUM
from cinescar.segmentation.measures import agreement, ejection_fraction, overlap, volumes
from cinescar.segmentation.network import network_params
from cinescar.segmentation.qc import exam_flags, stack_flags
from cinescar.segmentation.train import train_network

log = logging.getLogger(__name__)
TAGS = {"stage": "segmentation"}
EXTRA_PREFIX = "extra"


def patients_hash(pids: list[str]) -> str:
    """SHA-256 of the sorted training patient IDs: the bundle says which patients trained it without naming them."""
    return hashlib.sha256("\n".join(sorted(pids)).encode()).hexdigest()


def _extra_rows(extra_cohorts: list[str]) -> dict[str, tuple[Path, pd.Series]]:
    """Masks-only cohorts' rows, keyed `extra{i}/{patient_id}` so they can never collide with study IDs."""
    rows = {}
    for i, folder in enumerate(extra_cohorts):
        table = read_manifest(folder)
        for _, r in table.iterrows():
            rows[f"{EXTRA_PREFIX}{i}/{str(r['patient_id']).strip()}"] = (Path(folder), r)
    return rows


def crossfit_job(inputs: dict, outputs: dict, params: dict) -> dict:
    cfg = params["cfg"]
    seg = cfg["segmentation"]
    extra = sorted(_extra_rows(seg["extra_cohorts"]))
    assignment = crossfit_assignment(load_splits(inputs["splits"]), int(seg["crossfit_folds"]), int(cfg["seed"]),
                                     extra)
    atomic_write(outputs["crossfit"], lambda tmp: Path(tmp).write_text(json.dumps(assignment, indent=1)))
    return assignment


def _study_rows(manifest: str | Path) -> dict[str, tuple[Path, pd.Series]]:
    table = read_manifest(Path(manifest).parent)
    return {str(r["patient_id"]).strip(): (Path(manifest).parent, r) for _, r in table.iterrows()}


def _fields_of(pids: list[str], rows: dict, settings: FieldSettings) -> tuple[np.ndarray, np.ndarray, int]:
    """Stacked fields and labels of the patients' manually contoured stacks (float16 fields to halve memory)."""
    fields, labels, n_stacks = [], [], 0
    for pid in pids:
        folder, row = rows[pid]
        for st in read_stack_fields(folder, row, settings.size, settings.spacing_mm, settings.clip_percentiles):
            if st.labels is None:
                continue
            fields.append(st.fields.astype(np.float16))
            labels.append(st.labels)
            n_stacks += 1
    if not fields:
        return np.zeros((0, settings.size, settings.size), np.float16), np.zeros((0, settings.size, settings.size),
                                                                                  np.uint8), 0
    return np.concatenate(fields), np.concatenate(labels), n_stacks


def train_job(inputs: dict, outputs: dict, params: dict, fold: int) -> dict:
    """Train network `fold` on its training patients that have manual masks; early stopping on a held-out part."""
    cfg = params["cfg"]
    seg = cfg["segmentation"]
    settings = FieldSettings.from_preprocessing(cfg["preprocessing"])
    assignment = json.loads(Path(inputs["crossfit"]).read_text())
    train_pids = next(f["train"] for f in assignment["folds"] if f["fold"] == fold)
    rows = {**_study_rows(inputs["manifest"]), **_extra_rows(seg["extra_cohorts"])}
    contoured = [p for p in train_pids
                 if all(manual_mask_path(rows[p][0], rows[p][1], m) is not None for _, m in PHASES.values())]
    if len(contoured) < 2:
        raise CinescarError(f"segmentation network {fold}: {len(contoured)} of its {len(train_pids)} training "
                            "patients have manual masks; at least 2 are needed (add masks or "
                            "segmentation.extra_cohorts)")
    order = np.random.default_rng(int(cfg["seed"]) + 1000 + fold).permutation(len(contoured))
    n_val = max(1, int(round(float(seg["val_fraction"]) * len(contoured))))
    val_pids = sorted(contoured[i] for i in order[:n_val])
    fit_pids = sorted(contoured[i] for i in order[n_val:])
    x, y, n_fit = _fields_of(fit_pids, rows, settings)
    vx, vy, _ = _fields_of(val_pids, rows, settings)
    log.info("network %d: %d training patients (%d stacks, %d slices), %d for early stopping", fold, len(fit_pids),
             n_fit, len(x), len(val_pids))
    net_params = network_params(seg)
    with tracking.start_run(f"segmentation-fold{fold}",
                            {**TAGS, "fold": int(fold)}) as run:
        result = train_network(x, y, vx, vy, net_params, seg, int(cfg["seed"]) + fold)
        run.log_params({"segmentation": seg, "train_patients": len(fit_pids), "val_patients": len(val_pids)})
        for h in result.history:
            run.log_metrics({"val_myocardium_dice": h["val_myocardium_dice"], "loss": h["loss"]}, step=h["epoch"])
        run.log_metrics({"best_val_myocardium_dice": result.best_val_dice, "train_seconds": result.seconds})
    import torch

    meta = {"fold": fold, "network": net_params, "labels": LABELS, "field": settings.__dict__ | {
        "clip_percentiles": list(settings.clip_percentiles)}, "best_epoch": result.best_epoch,
        "val_myocardium_dice": result.best_val_dice, "history": result.history,
        "train_patients": len(fit_pids), "train_slices": int(len(x)), "val_patients": len(val_pids),
        "training_patients_sha256": patients_hash(train_pids), "seconds": result.seconds,
        "slices_per_second": result.slices_per_second}
    atomic_write(outputs["model"], lambda tmp: torch.save(result.state_dict, tmp))
    atomic_write(outputs["meta"], lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return meta


def load_segmenter(model_paths: list[str | Path], meta_paths: list[str | Path], which: str,
                   threads: int = 1) -> Segmenter:
    """Network `which` ('fold{k}') alone, or the mean of all ('ensemble')."""
    import torch

    metas = [json.loads(Path(p).read_text()) for p in meta_paths]
    chosen = [i for i, m in enumerate(metas) if which == ENSEMBLE or which == f"fold{m['fold']}"]
    nets = [(metas[i]["network"], torch.load(model_paths[i], weights_only=True)) for i in chosen]
    field = metas[0]["field"]
    settings = FieldSettings(int(field["size"]), float(field["spacing_mm"]), tuple(field["clip_percentiles"]))
    return Segmenter(nets, settings, threads)


def predict_job(inputs: dict, outputs: dict, params: dict, center: str) -> pd.DataFrame:
    """Predicted masks (NIfTI, the image's geometry, myocardium = 1) of one centre's patients, with QC flags and,
    where a manual mask exists, Dice, HD95 and the manual and predicted volumes."""
    cfg = params["cfg"]
    seg = cfg["segmentation"]
    assignment = json.loads(Path(inputs["crossfit"]).read_text())
    network_of = predicting_network(assignment)
    models, metas = list(inputs["models"]), list(inputs["metas"])
    segmenters: dict[str, Segmenter] = {}
    out_dir = Path(outputs["masks"])
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = FieldSettings.from_preprocessing(cfg["preprocessing"])
    rows = []
    for pid, (folder, row) in _study_rows(inputs["manifest"]).items():
        if slugify(row["center"]) != center:
            continue
        which = network_of.get(pid)
        if which is None:
            raise CinescarError(f"patient {pid} is in neither the development nor the held-out patients of "
                                "crossfit.json; rerun the segmentation split")
        if which not in segmenters:
            segmenters[which] = load_segmenter(models, metas, which, int(seg["threads"]))
        segmenter = segmenters[which]
        per_phase, vols, manual_vols, flags_by_phase = {}, {}, {}, {}
        images: dict = {}  # read once: for the fields and again for the masks' geometry
        for st in read_stack_fields(folder, row, settings.size, settings.spacing_mm, settings.clip_percentiles,
                                    volumes=images):
            result = segmenter.segment_fields(st.fields, st.geometry, st.spacing[2])
            grid = field_to_labels(result.labels, st.geometry)
            _write_mask(folder, row, st.phase, grid, predicted_mask_path(out_dir, pid, st.phase), images)
            flags_by_phase[st.phase] = stack_flags(result.labels, result.confidence, seg["qc"])
            vols[st.phase] = volumes(result.labels, st.spacing[2], settings.spacing_mm)
            rec = {"patient_id": pid, "phase": st.phase, "network": which,
                   "confidence": float(result.confidence[result.labels == MYOCARDIUM].mean())
                   if (result.labels == MYOCARDIUM).any() else float("nan"),
                   **{f"pred_{k}": v for k, v in vols[st.phase].items()}}
            if st.labels is not None:
                rec.update(overlap(result.labels, st.labels, st.spacing[2], settings.spacing_mm))
                manual_vols[st.phase] = volumes(st.labels, st.spacing[2], settings.spacing_mm)
                rec.update({f"manual_{k}": v for k, v in manual_vols[st.phase].items()})
            per_phase[st.phase] = rec
        flags = exam_flags(flags_by_phase, vols["ED"], seg["qc"])
        for phase, rec in per_phase.items():
            rec.update({"center": str(row["center"]), "vendor": str(row["vendor"]),
                        "role": _role(pid, assignment, row), "has_manual": "dice_myocardium" in rec,
                        "qc_flags": ";".join(flags),
                        "pred_lvef": ejection_fraction(vols["ED"]["lv_volume_ml"], vols["ES"]["lv_volume_ml"])})
            if set(manual_vols) == {"ED", "ES"}:
                rec["manual_lvef"] = ejection_fraction(manual_vols["ED"]["lv_volume_ml"],
                                                       manual_vols["ES"]["lv_volume_ml"])
            rows.append(rec)
    table = pd.DataFrame(rows)
    atomic_write(outputs["table"], lambda tmp: table.to_parquet(tmp, index=False))
    log.info("centre %s: %d patients segmented", center, table["patient_id"].nunique() if len(table) else 0)
    return table


def _role(pid: str, assignment: dict, row: pd.Series) -> str:
    if pid in assignment[ENSEMBLE]:
        return "external" if cohort_role(row["cohort"]) == "external" else "test"
    return "development"


def _write_mask(folder: Path, row: pd.Series, phase: str, grid: np.ndarray, path: Path,
                volumes: dict | None = None) -> None:
    """The myocardium (1) in the image's geometry, exactly as the contract asks of a manual mask."""
    from cinescar.cohort.contract import read_volume, resolve

    img = read_volume(resolve(folder, row[PHASES[phase][0]]), str(row["patient_id"]).strip(), volumes)
    myo = (grid == MYOCARDIUM).astype(np.uint8)
    mask = sitk.GetImageFromArray(myo if img.GetDimension() == 3 else myo[0])
    mask.CopyInformation(img)
    atomic_write(path, lambda tmp: sitk.WriteImage(mask, str(tmp)))


SUMMARY_GROUPS = [["role", "phase"], ["role", "phase", "center"], ["role", "phase", "vendor"]]
OVERLAP_COLUMNS = ["role", "phase", "class", "n_stacks", "dice_mean", "dice_median", "dice_min", "hd95_median_mm",
                   "center", "vendor"]


def gather_job(inputs: dict, outputs: dict, params: dict) -> dict:
    """`per_stack.csv` (every patient and phase), `overlap.csv` (Dice/HD95 per class, phase, role, centre,
    vendor), `agreement.csv` (LVEF, LV mass, MWT, EDV: bias and limits), `qc.csv` (flag counts per role)."""
    table = pd.concat([pd.read_parquet(p) for p in inputs["tables"]], ignore_index=True)
    atomic_write(outputs["per_stack"], lambda tmp: table.to_csv(tmp, index=False))
    manual = table[table["has_manual"]]
    summaries = []
    for keys in SUMMARY_GROUPS:
        for name in ("myocardium", "lv_cavity"):
            for group, part in manual.groupby(keys, dropna=False):
                d, h = part[f"dice_{name}"].dropna(), part[f"hd95_{name}"].dropna()
                summaries.append({**dict(zip(keys, group if isinstance(group, tuple) else (group,))),
                                  "class": name, "n_stacks": int(len(d)), "dice_mean": d.mean(),
                                  "dice_median": d.median(), "dice_min": d.min(), "hd95_median_mm": h.median()})
    # a cohort without contours (every study mask predicted, issue 23's DICOM import) has no manual stack: the
    # overlap table is then empty but keeps its columns, so the bundle and the report read it as "not measured"
    overlap_table = pd.DataFrame(summaries) if summaries else pd.DataFrame(columns=OVERLAP_COLUMNS)
    atomic_write(outputs["overlap"], lambda tmp: overlap_table.to_csv(tmp, index=False))
    ed = manual[manual["phase"] == "ED"]
    agree = []
    for role, part in [("all", ed), *ed.groupby("role")]:
        for name, pcol, mcol in (("LVEF_pct", "pred_lvef", "manual_lvef"), ("LV_mass_g", "pred_lv_mass_g",
                                  "manual_lv_mass_g"), ("MWT_mm", "pred_mwt_mm", "manual_mwt_mm"),
                                 ("LVEDV_ml", "pred_lv_volume_ml", "manual_lv_volume_ml")):
            if mcol in part:
                agree.append({"role": role, "measure": name, **agreement(part[pcol], part[mcol])})
    agreement_table = pd.DataFrame(agree)
    atomic_write(outputs["agreement"], lambda tmp: agreement_table.to_csv(tmp, index=False))
    exams = table.drop_duplicates("patient_id")
    qc_rows = []
    for role, part in exams.groupby("role"):
        flagged = part["qc_flags"].fillna("").astype(str).str.len() > 0
        qc_rows.append({"role": role, "exams": int(len(part)), "flagged": int(flagged.sum())})
        names = [f for fl in part["qc_flags"].fillna("") for f in str(fl).split(";") if f]
        for flag in sorted(set(names)):
            qc_rows.append({"role": role, "flag": flag, "exams": int(len(part)),
                            "flagged": int(sum(flag in str(fl).split(";") for fl in part["qc_flags"]))})
    qc_table = pd.DataFrame(qc_rows)
    atomic_write(outputs["qc"], lambda tmp: qc_table.to_csv(tmp, index=False))
    mean_dice = (manual.groupby("role")["dice_myocardium"].mean().to_dict() if len(manual) else {})
    cavity_dice = (manual.groupby("role")["dice_lv_cavity"].mean().to_dict() if len(manual) else {})
    with tracking.start_run("segmentation-evaluation", TAGS) as run:
        run.log_metrics({f"dice_myocardium_{r}": v for r, v in mean_dice.items()}
                        | {f"dice_lv_cavity_{r}": v for r, v in cavity_dice.items()})
    return {"dice_myocardium": mean_dice}
