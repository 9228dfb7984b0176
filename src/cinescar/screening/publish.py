"""The `bundle` job: build the bundle from the workflow's files, then register it in MLflow as a pyfunc model
(never fatal).

The build half of the bundle (issue 26: `cinescar.screening.bundle` keeps the format, verification and loading)
and the one module that imports both the bundle and its MLflow registration (`cinescar.screening.pyfunc`), so
that neither imports the other.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cinescar import __version__, tracking
from cinescar.config import schema_section
from cinescar.errors import CinescarError
from cinescar.models import IMAGE_MODELS, MODEL_LABELS
from cinescar.screening.bundle import (BUNDLE_JSON, FORMAT, FUSION_MODEL, METADATA_JSON, MODELS, RADIOMICS_MODEL,
                                       RADIOMICS_PARAMS, bundle_settings, sha256_file)
from cinescar.public import public
from cinescar.screening.members import dump_sklearn
from cinescar.screening.ood import training_ranges
from cinescar.versions import package_versions

log = logging.getLogger(__name__)




def _by_fold(paths: list[str | Path], fold: int, what: str) -> Path:
    """The one path of `paths` that lies in a `fold{fold}` folder (the workflow's per-fold layout)."""
    hits = [Path(p) for p in paths if Path(p).parent.name == f"fold{int(fold)}"]
    if len(hits) != 1:
        raise CinescarError(f"no single {what} file of fold {fold} among {[str(p) for p in paths]}")
    return hits[0]


def operating_points(final_models: str | Path, metrics: str | Path) -> dict[str, dict]:
    """Per model: the final model's folds, its cut-off (chosen on validation patients) and the validation sensitivity.

    The cut-off is `final_models.json`'s (written by the evaluation: the pooled out-of-fold cut-off, or a fold's
    own); `metrics.csv` must carry the same cut-off on the final model's rows (a disagreement means the two
    come from different evaluation runs). The validation sensitivity is the pooled validation patients' (in
    final_models.json), or, for a per-fold cut-off, the fold's `val` row of metrics.csv.
    """
    import pandas as pd

    final = json.loads(Path(final_models).read_text(encoding="utf-8"))
    missing = [m for m in MODELS if m not in final]
    if missing:
        raise CinescarError(f"{final_models} has no final model for {missing}")
    table = pd.read_csv(metrics)
    out = {}
    for model in MODELS:
        info = final[model]
        fold = int(info["fold"])
        folds = [int(f) for f in info.get("folds", [fold])]
        op = str(info.get("operating_point", "validation"))
        rows = table[(table["model"] == model) & (table["fold"] == fold) & (table["operating_point"] == op)]
        if rows.empty:
            raise CinescarError(f"{metrics} has no {op} rows for the final {model} model (fold {fold})")
        cutoff = float(info["cutoff"])
        if not np.allclose(rows["cutoff"].astype(float), cutoff, rtol=0, atol=1e-12):
            raise CinescarError(f"{final_models} and {metrics} disagree on the {model} cut-off of fold {fold} "
                                f"({cutoff} vs {rows['cutoff'].iloc[0]}): rerun the evaluation")
        val = info.get("validation")
        if op == "validation" or not val:
            row = rows[rows["cohort"] == "val"]
            if len(row) != 1:
                raise CinescarError(f"{metrics} has no validation row for {model} fold {fold}")
            val = {k: row.iloc[0][k] for k in ("sensitivity", "specificity", "n_patients")}
        out[model] = {
            "label": MODEL_LABELS[model],
            "fold": fold,
            "folds": folds,
            "aggregation": "mean over the fold models of each one's patient probability (maximum over images)",
            "cutoff": cutoff,
            "operating_point": op,
            "validation_sensitivity": float(val["sensitivity"]),
            "validation_specificity": float(val["specificity"]),
            "validation_patients": int(val["n_patients"]),
            "test_auc": info.get("test_auc"),
            "external_auc": info.get("external_auc"),
            "fold_rule": info.get("rule_label", info.get("rule", "fold with the highest internal-test AUC")),
            "optimistic": bool(info.get("optimistic", False)),
        }
    return out


def external_cohorts(manifest: str | Path) -> list[dict[str, Any]]:
    """The external cohorts the study scored (issue 12: a bundle says where it was tested), with n and LGE+ each.

    Names as the evaluation reports them (`evidence.external_names`: `external` or `external:<name>`); counts
    only, no patient."""
    import pandas as pd

    from cinescar.evaluation.evidence import external_names

    man = pd.read_csv(manifest, dtype={"patient_id": str}).drop_duplicates("patient_id").set_index("patient_id")
    names = pd.Series(external_names(man.reset_index(), None), dtype=object)
    lge = pd.to_numeric(man.loc[names.index, "lge"])
    return [{"name": str(name), "n_patients": int(len(g)), "n_pos": int(g.sum())}
            for name, g in lge.groupby(names.to_numpy(), sort=True)]


def _copy_cnn(ckpt: Path, hparams: Path, dest: Path, fold: int) -> dict[str, str]:
    """Copy one fold's CNN; check that it loads as plain weights (weights_only) into its network first."""
    from cinescar.dl.inference import load_model

    hp = json.loads(Path(hparams).read_text(encoding="utf-8"))
    if "network" not in hp:
        raise CinescarError(f"{hparams} has no 'network' hyper-parameters")
    load_model(ckpt, hparams)
    (dest / "cnn").mkdir(parents=True, exist_ok=True)
    weights, params = f"cnn/fold{fold}.pt", f"cnn/fold{fold}.json"
    shutil.copyfile(ckpt, dest / weights)
    (dest / params).write_text(json.dumps({"network": hp["network"], "fold": int(fold),
                                           "source": public(str(ckpt))}, indent=1))
    return {"weights": weights, "hparams": params}


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Swap the finished bundle in, so a reader never sees a half-written one."""
    old = out_dir.with_name(out_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old.exists():
        shutil.rmtree(old)


def build_bundle(
    out_dir: str | Path,
    *,
    final_models: str | Path,
    metrics: str | Path,
    radiomics_models: list[str | Path],
    radiomics_chosen_k: str | Path,
    dl_models: list[str | Path],
    dl_hparams: list[str | Path],
    fusion_models: list[str | Path],
    fusion_choice: str | Path,
    radiomics_params: str | Path,
    index: str | Path,
    splits: str | Path,
    manifest: str | Path,
    cfg: dict,
    run_cfg: dict | None = None,
    segmentation_models: list[str | Path] | None = None,
    segmentation_metas: list[str | Path] | None = None,
    segmentation_overlap: str | Path | None = None,
) -> Path:
    """Write the bundle folder `out_dir` from a finished study's files; returns the path of bundle.json.

    Per-fold inputs are lists over all folds (the workflow's layout); the folds named in `final_models`
    are picked from them. `cfg` holds the sections the bundle is made from (the rule's params); `run_cfg`,
    the workflow's whole config (default `cfg`), is only recorded (metadata `config`, `config_hash`, the
    training cohort's name) as the bundle's provenance.
    """
    from cinescar.config import config_hash
    from cinescar.fusion.run import load_model as load_fusion
    from cinescar.radiomics.run import load_model as load_radiomics

    out_dir = Path(out_dir)
    points = operating_points(final_models, metrics)
    folds = {m: points[m]["folds"] for m in MODELS}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "radiomics").mkdir(parents=True)
    (tmp / "fusion").mkdir(parents=True)

    rad_files, fus_files, selected = {}, {}, {"radiomics": {}, "fusion": {}}
    for fold in folds["radiomics"]:
        rad = load_radiomics(_by_fold(radiomics_models, fold, "radiomics model"), chosen_k_path=radiomics_chosen_k)
        rad_files[str(fold)] = RADIOMICS_MODEL.format(fold=fold)
        dump_sklearn(rad, tmp / rad_files[str(fold)], rad_files[str(fold)])
        selected["radiomics"][str(fold)] = list(rad.selected)
    for fold in folds["fusion"]:
        fus = load_fusion(_by_fold(fusion_models, fold, "fusion model"), choice_path=fusion_choice)
        fus_files[str(fold)] = FUSION_MODEL.format(fold=fold)
        dump_sklearn(fus, tmp / fus_files[str(fold)], fus_files[str(fold)])
        selected["fusion"][str(fold)] = list(fus.selected)
    cnns = {}
    for fold in sorted({*folds["dl"], *folds["fusion"]}):
        cnns[str(fold)] = _copy_cnn(_by_fold(dl_models, fold, "DL model"), _by_fold(dl_hparams, fold, "DL hparams"),
                                    tmp, fold)
    if not Path(radiomics_params).is_file():
        raise CinescarError(f"pyradiomics parameter file not found: {radiomics_params}")
    shutil.copyfile(radiomics_params, tmp / RADIOMICS_PARAMS)

    segmenter = None
    if segmentation_models:
        from cinescar.segmentation.bundle_member import write_segmenter

        segmenter = write_segmenter(tmp, segmentation_models, segmentation_metas or [],
                                    schema_section(cfg, "segmentation", "qc"), segmentation_overlap)
    settings = bundle_settings(cfg)
    gradcam = schema_section(cfg, "dl", "gradcam")
    provenance = run_cfg or cfg
    models = {
        "radiomics": {**points["radiomics"], "files": rad_files, "k": int(rad.k), "failure_policy": rad.failure_policy,
                      "selected_features": selected["radiomics"]},
        "dl": {**points["dl"]},  # fold f's DL model is CNN f
        "fusion": {**points["fusion"], "files": fus_files, "k": int(fus.k), "classifier": fus.classifier_name,
                   "failure_policy": fus.failure_policy, "selected_features": selected["fusion"]},  # fold f's fused model reads CNN f's DL features
    }
    metadata = {
        "cinescar_version": __version__,
        "models": models,
        "cnn": cnns,
        "segmentation": segmenter,  # None: the study trained none; exams then need their masks
        "screening": {
            "target_sensitivity": float(schema_section(cfg, "screening")["target_sensitivity"]),
            "patient_probability": "mean over the model's fold models of each one's maximum over the exam's images",
            "positive": "patient probability >= cut-off (ties are positive)",
            "cutoff": "highest threshold whose sensitivity on the validation patients reaches the target "
                      "(pooled out-of-fold validation patients by default; see each model's operating_point)",
        },
        "preprocessing": dict(cfg.get("preprocessing", {})),
        "radiomics_params": RADIOMICS_PARAMS,
        "training_ranges": training_ranges(index, splits, sorted({f for fs in folds.values() for f in fs})),
        "ood_tolerance": float(settings["ood_tolerance"]),
        "gradcam": {"n_images": int(settings["gradcam_images"]), "layer": str(gradcam["layer"]),
                    "alpha": float(gradcam["alpha"])},
        "training_cohort": {"name": provenance.get("cohort", {}).get("name"), "manifest_sha256": sha256_file(manifest)},
        "external_cohorts": external_cohorts(manifest),  # scored on its own each; the report has their numbers
        "config": public(provenance),  # the bundle is shipped: no credentials, no absolute paths
        "config_hash": config_hash(provenance),
        "versions": package_versions(),
    }
    (tmp / METADATA_JSON).write_text(json.dumps(metadata, indent=1, default=str))
    files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (tmp / BUNDLE_JSON).write_text(json.dumps({"format": FORMAT, "created_utc": created,
                                               "cinescar_version": __version__, "files": files}, indent=1))
    _replace_dir(tmp, out_dir)
    log.info("bundle %s: radiomics folds %s, DL folds %s, DL-Radiomics folds %s; %d files; bundle.json SHA-256 %s",
             out_dir, folds["radiomics"], folds["dl"], folds["fusion"], len(files),
             sha256_file(out_dir / BUNDLE_JSON))
    return out_dir / BUNDLE_JSON


# ---------------------------------------------------------------------------------------------- loading


def build_bundle_from_workflow(out_json: str | Path, cfg: dict, *, run_cfg: dict | None = None,
                               **inputs: Any) -> Path:
    """Build the bundle next to `out_json` (which must be its bundle.json), then register it unless
    `bundle.register_model` is false; registration problems are warnings, the bundle folder is the product.

    `cfg`: the sections the bundle is made from (the rule's params); `run_cfg`: the workflow's whole config,
    recorded in the bundle as its provenance only (default: the config the job's tracking was set up with,
    `tracking.job_config`, else `cfg`)."""
    out_json = Path(out_json)
    if out_json.name != BUNDLE_JSON:
        raise CinescarError(f"the bundle's output must be a {BUNDLE_JSON}, got {out_json}")
    path = build_bundle(out_json.parent, cfg=cfg, run_cfg=run_cfg or tracking.job_config(), **inputs)
    if bundle_settings(cfg)["register_model"]:
        from cinescar.screening.pyfunc import register_bundle

        register_bundle(out_json.parent, cfg)
    else:
        log.info("bundle.register_model is false: the bundle is not registered in MLflow")
    return path
