"""The workflow's file names as its rules declare them (workflow/rules/*.smk), for tests that run one job's
function without Snakemake: the library takes every output name from its caller (issue 26), so a test that
stands in for a rule names the files the way the rule does."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dl_train_outputs(fold_dir: str | Path, gradcam_dir: str | Path) -> dict[str, Path]:
    """`dl_train`'s outputs (workflow/rules/dl.smk) under a fold folder and a Grad-CAM folder."""
    out, gc = Path(fold_dir), Path(gradcam_dir)
    return {"model": out / "model.ckpt", "hparams": out / "hparams.json", "predictions": out / "predictions.parquet",
            "features": out / "features.parquet", "curve": out / "selection_curve.csv", "gradcam": gc / "done.json"}


def train_dl_fold(store: str | Path, params_path: str | Path | None, cfg: dict, fold: int, fold_dir: str | Path,
                  gradcam_dir: str | Path, index: str | Path | None = None, splits: str | Path | None = None) -> Any:
    """`dl_train` of one fold on a preprocessed store (its index.parquet and, by default, splits.json)."""
    from cinescar.dl.run import train_job

    store = Path(store)
    inputs = {"index": index or store / "index.parquet", "splits": splits or store / "splits.json",
              "params": params_path}
    return train_job(inputs, dl_train_outputs(fold_dir, gradcam_dir), {"cfg": cfg}, fold)


def tune_dl(store: str | Path, cfg: dict, out: str | Path) -> Any:
    """`dl_tune` on a preprocessed store (index.parquet, splits.json), writing best_params.json to `out`."""
    from cinescar.dl.run import tune_job

    store = Path(store)
    return tune_job({"index": store / "index.parquet", "splits": store / "splits.json"}, {"params": out},
                    {"cfg": cfg})


def gather_dl(paths: list[str | Path], out: str | Path, spread: str | Path | None = None) -> Any:
    """`dl_gather` of fold predictions into `out` (+ the fold spread)."""
    from cinescar.dl.run import gather_job

    return gather_job({"predictions": list(paths)}, {"predictions": out, "spread": spread})


def evaluation_outputs(folder: str | Path) -> dict[str, Path]:
    """`evaluate`'s outputs by name (`cinescar.evaluation.run.evaluation_outputs`), in `folder`, read from the
    rule itself (workflow/rules/evaluation.smk) so that the test and the rule cannot name a file differently."""
    import re

    from cinescar.evaluation.run import evaluation_outputs as by_name

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules" / "evaluation.smk"
    block = rules.read_text(encoding="utf-8").split("rule evaluate:", 1)[1].split("    output:", 1)[1]
    block = block.split("    log:", 1)[0]
    named, evidence = block.split("evidence=multiext(", 1)
    outputs: dict[str, Any] = {k: Path(folder) / name
                               for k, name in re.findall(r'(\w+)=(?:report\(\s*)?f"\{EVALUATION\}/([\w.]+)"', named)}
    outputs["evidence"] = [Path(folder) / name for name in re.findall(r'"([\w.]+\.(?:csv|json))"', evidence)]
    return by_name(outputs)
