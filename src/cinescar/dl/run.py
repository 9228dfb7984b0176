"""Files in, files out, MLflow on the side: the DL stage as the workflow runs it (issue 26).

Each function is one job: it takes the rule's declared inputs, outputs and params (the scripts pass
`dict(snakemake.input)`, `dict(snakemake.output)` and the params) and nothing else; output names live in
`workflow/rules/dl.smk` only. Tracking was set up by the script (`cinescar.jobs.setup_job`). The maths lives in
`tune`, `train`, `features` and `gradcam` below this module.

Numeric threads come from the params (`dl.threads`), not from the cores Snakemake grants (`--cores 1` scales
`threads:` down): the thread count changes floating-point summation order, and the same config must give the
same numbers whatever --cores says.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import torch

from cinescar import tracking
from cinescar.cohort.splits import load_splits
from cinescar.config import schema_defaults, schema_section
from cinescar.preprocessing.store import load_index

log = logging.getLogger(__name__)
TAGS = {"stage": "dl", "model": "dl"}


def _threads(cfg: dict) -> None:
    torch.set_num_threads(int(schema_section(cfg, "dl")["threads"]))


def _store_root(inputs: dict) -> Path:
    """The preprocessed store is the folder of the gathered index (results/preprocess): its arrays are inputs."""
    return Path(inputs["index"]).parent


def tune_job(inputs: dict, outputs: dict, params: dict) -> dict:
    """`dl_tune`: tune on fold `dl.tuning.fold`, write `outputs["params"]` (best_params.json), log to MLflow.

    With `dl.tuning.enabled: false` the configured values are written as the "chosen" ones (tuned: false),
    so the workflow's shape does not depend on the switch."""
    from cinescar.dl.train import merged_params, role_arrays
    from cinescar.dl.tune import TUNABLE, tune, tuning_images

    cfg = params["cfg"]
    _threads(cfg)
    store_root = _store_root(inputs)
    dl_cfg = cfg["dl"]
    tcfg = schema_section(dl_cfg, "tuning", defaults=("dl", "tuning"))
    seed = int(cfg.get("seed", schema_defaults()["seed"]))
    fold = int(tcfg["fold"])
    out_path = Path(outputs["params"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tracking.start_run("dl-tuning", {**TAGS, "fold": fold}) as run:
        if not tcfg["enabled"]:
            base = merged_params(dl_cfg)
            result = {"params": {k: base[k] for k in TUNABLE if k in base}, "tuned": False, "trials": []}
        else:
            roles = tuning_images(load_index(inputs["index"]), load_splits(inputs["splits"]), fold)
            run.log_params({"fold": fold, "seed": seed, "metric": tcfg["metric"], "n_trials": tcfg["n_trials"],
                            "max_epochs": tcfg["max_epochs"],
                            "search_space": json.dumps(tcfg["search_space"], sort_keys=True)})

            def to_mlflow(record: dict) -> None:
                if record["value"] is not None:
                    run.log_metrics({f"trial_{tcfg['metric']}": record["value"]},
                                    step=record["number"])
                run.log_metrics({"trial_pruned": float(record["state"] == "PRUNED"),
                                 "trial_epochs": float(record["epochs"] or 0)}, step=record["number"])

            result = tune(role_arrays(roles["train"], store_root), role_arrays(roles["val"], store_root), dl_cfg,
                          seed, log_fn=to_mlflow, val_groups=roles["val"]["patient_id"].astype(str).to_numpy())
            run.log_metrics({"n_pruned": result["n_pruned"], "n_complete": result["n_complete"]})
            result["fold"] = fold
        run.log_params({f"best.{k}": v for k, v in result["params"].items()})
        if result.get("best_value") is not None:
            run.log_metrics({"best_value": result["best_value"]})
        out_path.write_text(json.dumps(result, indent=1))
        run.log_artifact(out_path)
    log.info("DL hyperparameters: %s", result["params"])
    return result


def train_job(inputs: dict, outputs: dict, params: dict, fold: int) -> dict:
    """`dl_train`: train fold `fold`; write the model, its hyper-parameters, predictions, DL features, the
    selection curve and the Grad-CAM overlays (beside `outputs["gradcam"]`, the done.json that lists them)."""
    from cinescar.dl.gradcam import render_overlay
    from cinescar.dl.train import SELECTION_METRICS, _isnan, gradcam_examples, save_model, train_fold

    cfg = params["cfg"]
    _threads(cfg)
    fold = int(fold)
    store_root = _store_root(inputs)
    tuned = json.loads(Path(inputs["params"]).read_text())["params"] if inputs.get("params") else None
    index = load_index(inputs["index"])
    model_dir = Path(outputs["model"]).parent
    for key in ("model", "hparams", "predictions", "features", "curve", "gradcam"):
        Path(outputs[key]).parent.mkdir(parents=True, exist_ok=True)
    with tracking.start_run(f"dl-fold{fold}", {**TAGS, "fold": fold}) as run:
        def to_mlflow(k: int, record: dict) -> None:
            prefix = "" if k == 0 else f"seed{k}_"
            run.log_metrics({f"{prefix}{name}": v for name, v in record.items()
                             if name != "epoch" and not _isnan(v)}, step=record["epoch"])

        out = train_fold(index, load_splits(inputs["splits"]), fold, store_root, cfg, tuned, root_dir=model_dir,
                         on_epoch=to_mlflow)
        result = out.result
        run.log_params({**{f"net.{k}": v for k, v in out.params.items()}, "seed": out.seed, "fold": fold,
                        "n_train": out.n_train, "n_val": out.n_val, "seeds": len(out.seeds),
                        **{f"training.{k}": v for k, v in out.training.items()}})
        out.features.to_parquet(outputs["features"], index=False)
        out.predictions.to_parquet(outputs["predictions"], index=False)
        out.curve.to_csv(outputs["curve"], index=False)
        save_model(result.net, outputs["model"], out.meta, outputs["hparams"])

        gc = schema_section(schema_section(cfg, "dl"), "gradcam", defaults=("dl", "gradcam"))
        gradcam_dir = Path(outputs["gradcam"]).parent
        for stale in gradcam_dir.glob("*.png"):  # this job's own folder: no overlay of an earlier run survives
            stale.unlink()
        pngs = []
        for image_id, prob, x, heat in gradcam_examples(result.net, out.predictions, index, store_root, gc):
            png = render_overlay(x[0], x[1], heat, gradcam_dir / f"{image_id}.png",
                                 title=f"{image_id}  P(scar)={prob:.2f}", alpha=float(gc["alpha"]))
            pngs.append(png.name)
        Path(outputs["gradcam"]).write_text(json.dumps({"fold": fold, "layer": gc["layer"], "images": pngs},
                                                       indent=1))

        run.log_metrics({"best_epoch": result.best["epoch"], "epochs_run": len(result.history),
                         **{f"best_{k}": result.best[k] for k in SELECTION_METRICS if not _isnan(result.best.get(k))},
                         **({"pos_weight": result.pos_weight} if result.pos_weight is not None else {})})
        run.set_tags({"best_epoch": result.best["epoch"], "selection_metric": out.metric})
        for path in (outputs["model"], outputs["hparams"], outputs["curve"]):
            run.log_artifact(path)
        for png in pngs:
            run.log_artifact(gradcam_dir / png, "gradcam")
    log.info("fold %d: best epoch %d (%s %.4f, val loss %.4f); %d predictions, %d feature rows, %d Grad-CAM",
             fold, result.best["epoch"], out.metric, result.best.get(out.metric, math.nan), result.best["val_loss"],
             len(out.predictions), len(index), len(pngs))
    return {"best": result.best, "history": result.history, "n_predictions": len(out.predictions), "gradcam": pngs}


def gather_job(inputs: dict, outputs: dict, params: dict | None = None) -> pd.DataFrame:
    """`dl_gather`: the folds' predictions in one table (`outputs["predictions"]`) and the DL's fold-to-fold
    spread (`outputs["spread"]`, when declared)."""
    from cinescar.dl.train import fold_spread, gather_predictions

    table = gather_predictions([pd.read_parquet(p) for p in inputs["predictions"]])
    Path(outputs["predictions"]).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(outputs["predictions"], index=False)
    if outputs.get("spread") is not None:
        spread = fold_spread(table)
        spread.to_csv(outputs["spread"], index=False)
        val = spread[(spread["split"] == "val")].set_index("fold")["patient_auc"]
        log.info("DL validation patient AUC per fold %s; pooled out-of-fold %.3f, fold SD %.3f",
                 ", ".join(f"{v:.3f}" for k, v in val.items() if k not in ("mean", "sd", "pooled")),
                 val.get("pooled", math.nan), val.get("sd", math.nan))
    return table

