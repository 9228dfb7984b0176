"""The study's evaluation: from the three models' image predictions to every number of the report.

`evaluate_study` reads the predictions of the Radiomics, DL and DL-Radiomics models (architecture.md,
"Predictions"), checks that each covers exactly the images the splits say it must, aggregates to patients,
sets the screening cut-off per fold on validation patients, and writes (under `out_dir`):

| file | content |
|---|---|
| `patients.csv` | patient-level probabilities (model, fold, split, patient_id, lge, prob, n_images) |
| `metrics.csv` | per model, fold, cohort (val/test/external) and operating point: cut-off and all metrics |
| `final_models.json` | per model the fold with the highest internal-test AUC (the paper's rule) |
| `delong.csv` | DeLong tests between every pair of models, per fold and cohort, and for the final models |
| `roc.csv` | ROC curves with 95 % bootstrap bands of the final models (internal test, external) |
| `table1.csv` … `table4.csv` | the paper's Tables 1–4; `table4_folds.csv` every fold on the external cohort |
| `table_s1.csv` | the DL-Radiomics classifier comparison (copied from results/fusion/classifiers.csv) |
| `table_s2.csv`, `table_s3.csv` | recurrence of selected features across folds (radiomics, fusion) |
| `summary.json` | the headline numbers (final models, their metrics, the fusion's choice of k/classifier) |

and logs the numbers to MLflow (stage=evaluation).
"""

from __future__ import annotations

import json
import logging
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from cinescar.errors import CinescarError, CohortError
from cinescar.evaluation.delong import delong_test
from cinescar.evaluation.metrics import roc_with_band
from cinescar.evaluation.screening import VALIDATION, patient_probabilities, screening_table
from cinescar.evaluation.tables import (
    feature_recurrence,
    final_model_table,
    reproducibility_table,
    study_cohort_tables,
)

log = logging.getLogger(__name__)
MODELS = ("radiomics", "dl", "fusion")
MODEL_LABELS = {"radiomics": "Radiomics", "dl": "DL", "fusion": "DL-Radiomics"}
ROLE_OF_SPLIT = {"val": "val_all", "test": "test", "external": "external"}
DELONG_COLUMNS = ["scope", "cohort", "model_a", "fold_a", "model_b", "fold_b", "n_patients",
                  "auc_a", "auc_b", "diff", "se", "z", "p"]  # fmt: skip


def check_coverage(pred: pd.DataFrame, index: pd.DataFrame, splits: dict, model: str,
                   source: str | Path) -> int:  # fmt: skip
    """Check each fold's val_all/test/external images against the splits; return the number not predicted.

    An unexpected image, or a patient with no predicted image at all, is an error naming the patient and the
    predictions file. Single images may legitimately be absent (radiomics `failure_policy: exclude` leaves
    out images whose extraction failed); they are counted, logged, and reported in summary.json.
    """
    from cinescar.preprocessing.splits import fold_images

    folds = [int(f["fold"]) for f in splits["folds"]]
    got_folds = sorted(int(f) for f in pred["fold"].unique())
    if got_folds != sorted(folds):
        raise CinescarError(f"{model} predictions {source} hold folds {got_folds}, the splits have {sorted(folds)}")
    n_missing = 0
    for fold in folds:
        roles = fold_images(index, splits, fold)
        pf = pred[pred["fold"] == fold]
        for split, role in ROLE_OF_SPLIT.items():
            want = roles[role].assign(image_id=roles[role]["image_id"].astype(str))
            have = pf[pf["split"] == split]
            extra = sorted(set(have["image_id"]) - set(want["image_id"]))
            if extra:
                pid = str(have.loc[have["image_id"] == extra[0], "patient_id"].iloc[0])
                raise CohortError(f"{model} fold {fold} split {split}: image {extra[0]} is predicted but is not "
                                  f"a {role} image of this fold ({len(extra)} such images)", patient_id=pid,
                                  path=source)  # fmt: skip
            lost = sorted(set(want["patient_id"].astype(str)) - set(have["patient_id"].astype(str)))
            if lost:
                raise CohortError(f"{model} fold {fold} split {split}: no image of this patient is predicted "
                                  f"({len(lost)} such patients)", patient_id=lost[0], path=source)  # fmt: skip
            missing = want.loc[~want["image_id"].isin(set(have["image_id"])), "image_id"]
            if len(missing):
                n_missing += len(missing)
                log.warning("%s fold %d split %s: %d image(s) not predicted, e.g. %s; their patients' probability "
                            "is the maximum over the remaining images", model, fold, split, len(missing),
                            missing.head(3).tolist())  # fmt: skip
    return n_missing


def choose_final_models(metrics: pd.DataFrame) -> dict[str, dict]:
    """The paper's rule: per model the fold with the highest internal-test AUC (ties → lowest fold)."""
    out = {}
    m = metrics[(metrics["cohort"] == "test") & (metrics["operating_point"] == VALIDATION)]
    for model, mm in m.groupby("model", sort=False):
        # equal AUCs (same rational value, different float rounding) are a tie, resolved by the lowest fold
        mm = mm.assign(auc_r=mm["auc"].round(12)).sort_values(["auc_r", "fold"], ascending=[False, True])
        best = mm.iloc[0]
        ext = metrics[(metrics["model"] == model) & (metrics["fold"] == best["fold"])
                      & (metrics["cohort"] == "external") & (metrics["operating_point"] == VALIDATION)]  # fmt: skip
        out[str(model)] = {
            "fold": int(best["fold"]),
            "test_auc": float(best["auc"]),
            "external_auc": float(ext["auc"].iloc[0]) if len(ext) else None,
            "cutoff": float(best["cutoff"]),
            "rule": "fold with the highest patient-level AUC on the internal test cohort (paper)",
        }
    return out


def _aligned(patients: dict[str, pd.DataFrame], picks: dict[str, int], cohort: str) -> tuple[np.ndarray, dict]:
    """Labels and per-model probabilities on the same patients (models may come from different folds)."""
    frames = {}
    for model, fold in picks.items():
        p = patients[model]
        frames[model] = p[(p["fold"] == fold) & (p["split"] == cohort)].set_index("patient_id")
    ids = {m: set(f.index) for m, f in frames.items()}
    first = next(iter(ids))
    for m, s in ids.items():
        if s != ids[first]:
            diff = sorted(s ^ ids[first])
            raise CohortError(f"models {first} and {m} were evaluated on different {cohort} patients "
                              f"({len(diff)} differ)", patient_id=diff[0])  # fmt: skip
    order = sorted(ids[first])
    y = frames[first].loc[order, "lge"].to_numpy(dtype=int)
    for m, f in frames.items():
        if not np.array_equal(f.loc[order, "lge"].to_numpy(dtype=int), y):
            raise CinescarError(f"models {first} and {m} disagree on LGE labels of {cohort} patients")
    return y, {m: f.loc[order, "prob"].to_numpy(dtype=float) for m, f in frames.items()}


def delong_table(patients: dict[str, pd.DataFrame], final_models: dict[str, dict]) -> pd.DataFrame:
    """DeLong tests between every pair of models: per fold (same fold for both) and for the final models."""
    rows = []
    models = list(patients)
    folds = sorted(set.intersection(*(set(p["fold"].unique()) for p in patients.values())))
    scopes = [(f"fold {f}", {m: int(f) for m in models}) for f in folds]
    scopes.append(("final", {m: int(final_models[m]["fold"]) for m in models}))
    for scope, picks in scopes:
        for cohort in ("test", "external"):
            if not all(((p["split"] == cohort) & (p["fold"] == picks[m])).any() for m, p in patients.items()):
                continue
            y, scores = _aligned(patients, picks, cohort)
            for a, b in combinations(models, 2):
                try:
                    res = delong_test(y, scores[a], scores[b]).as_dict()
                except CinescarError as exc:  # too few patients of a class: the test is undefined, say why
                    log.warning("DeLong %s %s %s vs %s not computed: %s", scope, cohort, a, b, exc)
                    res = {k: float("nan") for k in ("auc_a", "auc_b", "diff", "se", "z", "p")}
                rows.append({"scope": scope, "cohort": cohort, "model_a": a, "fold_a": picks[a], "model_b": b,
                             "fold_b": picks[b], "n_patients": len(y), **res})  # fmt: skip
    return pd.DataFrame(rows, columns=DELONG_COLUMNS)


def roc_table(patients: dict[str, pd.DataFrame], final_models: dict[str, dict], n_boot: int, level: float,
              seed: int) -> pd.DataFrame:  # fmt: skip
    """ROC curves (fixed FPR grid) with bootstrap bands of the final models on test and external."""
    frames = []
    for model, p in patients.items():
        fold = int(final_models[model]["fold"])
        for cohort in ("test", "external"):
            pc = p[(p["fold"] == fold) & (p["split"] == cohort)]
            if pc.empty or pc["lge"].nunique() < 2:
                continue
            band = roc_with_band(pc["lge"].to_numpy(), pc["prob"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
            frames.append(band.assign(model=model, fold=fold, cohort=cohort))
    cols = ["model", "fold", "cohort", "fpr", "tpr", "tpr_low", "tpr_high"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    # full precision: a cut-off read back from the CSV must classify the patient at the cut-off the same way
    df.to_csv(path, index=False)


def evaluate_study(
    predictions: dict[str, str | Path],
    index_path: str | Path,
    splits_path: str | Path,
    manifest_path: str | Path | None,
    out_dir: str | Path,
    cfg: dict,
    selected_features: dict[str, tuple[str | Path, str | Path | None]] | None = None,
    fusion_classifiers: str | Path | None = None,
    fusion_choice: str | Path | None = None,
) -> dict[str, Path]:
    """Run the whole evaluation and write its files; returns {name: path} of what was written.

    `selected_features` maps "radiomics"/"fusion" to (selected_features.csv, choice JSON holding "k").
    `fusion_classifiers` (results/fusion/classifiers.csv) and `fusion_choice` (choice.json) are copied into
    `table_s1.csv` and summary.json, so every number of the report sits under `out_dir`.
    """
    from cinescar.cohort.contract import read_manifest
    from cinescar.preprocessing.splits import load_splits

    scr = cfg.get("screening", {})
    ev = cfg.get("evaluation", {})
    target = float(scr.get("target_sensitivity", 0.90))
    optimistic = bool(scr.get("cutoff_on_test", False))
    level = float(ev.get("ci_level", 0.95))
    alpha = float(ev.get("alpha", 0.05))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    index = pd.read_parquet(index_path)
    splits = load_splits(splits_path)
    patients: dict[str, pd.DataFrame] = {}
    not_predicted: dict[str, int] = {}
    metric_frames = []
    for model, path in predictions.items():
        pred = pd.read_parquet(path)
        pred["image_id"] = pred["image_id"].astype(str)
        pred["patient_id"] = pred["patient_id"].astype(str)
        pred["fold"] = pred["fold"].astype(int)
        patients_m = patient_probabilities(pred, source=path)
        not_predicted[model] = check_coverage(pred, index, splits, model, path)
        patients[model] = patients_m
        metric_frames.append(screening_table(patients_m, target, optimistic, level).assign(model=model))
    metrics = pd.concat(metric_frames, ignore_index=True)
    metrics = metrics[["model", *[c for c in metrics.columns if c != "model"]]]
    final = choose_final_models(metrics)

    files: dict[str, Path] = {}

    def _csv(name: str, df: pd.DataFrame) -> None:
        files[name] = out / f"{name}.csv"
        _write_csv(df, files[name])

    _csv("patients", pd.concat([p.assign(model=m) for m, p in patients.items()], ignore_index=True)[
        ["model", "fold", "split", "patient_id", "lge", "prob", "n_images"]])
    _csv("metrics", metrics)
    files["final_models"] = out / "final_models.json"
    files["final_models"].write_text(json.dumps(final, indent=2))
    _csv("delong", delong_table(patients, final))
    _csv("roc", roc_table(patients, final, int(ev.get("n_bootstrap", 1000)), level, int(cfg.get("seed", 0))))

    if manifest_path is not None and Path(manifest_path).exists():
        manifest = read_manifest(Path(manifest_path).parent)
        table1, table2 = study_cohort_tables(manifest, splits, alpha)
    else:
        log.warning("no manifest at %s: cohort tables are empty", manifest_path)
        table1 = table2 = pd.DataFrame()
    _csv("table1", table1)
    _csv("table2", table2)
    _csv("table3", reproducibility_table(metrics, "test"))
    _csv("table4", final_model_table(metrics, final, "external"))
    _csv("table4_folds", reproducibility_table(metrics, "external"))
    final_metrics = pd.concat([final_model_table(metrics, final, c).assign(cohort=c) for c in ("test", "external")],
                              ignore_index=True)
    _csv("final_metrics", final_metrics)
    for name, key in (("table_s2", "radiomics"), ("table_s3", "fusion")):
        csv_path, choice_path = (selected_features or {}).get(key, (None, None))
        if csv_path is not None and Path(csv_path).exists():
            k = json.loads(Path(choice_path).read_text())["k"] if choice_path and Path(choice_path).exists() else None
            _csv(name, feature_recurrence(pd.read_csv(csv_path), k=k, n_folds=len(splits["folds"])))
        else:
            _csv(name, pd.DataFrame(columns=["feature", "kind", "n_folds", "share", "folds"]))

    if fusion_classifiers is not None and Path(fusion_classifiers).exists():
        _csv("table_s1", pd.read_csv(fusion_classifiers))
    else:
        _csv("table_s1", pd.DataFrame(columns=["classifier", "k", "mean", "sd", "chosen"]))
    choice = json.loads(Path(fusion_choice).read_text()) if fusion_choice and Path(fusion_choice).exists() else None

    summary = {
        "fusion_choice": choice,
        "target_sensitivity": target,
        "cutoff_on_test": optimistic,
        "final_models": final,
        "images_not_predicted": not_predicted,
        "final_metrics": final_metrics.to_dict("records"),
    }
    files["summary"] = out / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2, default=float))
    log_to_mlflow(cfg, metrics, final, files)
    return files


def log_to_mlflow(cfg: dict, metrics: pd.DataFrame, final: dict, files: dict[str, Path]) -> None:
    """Every metric row as an MLflow metric `{model}.fold{f}.{cohort}.{op}.{metric}`; files as artifacts."""
    from cinescar import tracking

    flat: dict[str, float] = {}
    for r in metrics.itertuples(index=False):
        for col in ("cutoff", "sensitivity", "specificity", "ppv", "npv", "accuracy", "auc", "auc_ci_low",
                    "auc_ci_high", "spared_scar_free", "spared_all"):
            v = getattr(r, col)
            if v is not None and np.isfinite(v):
                flat[f"{r.model}.fold{r.fold}.{r.cohort}.{r.operating_point}.{col}"] = float(v)
    for model, info in final.items():
        flat[f"final.{model}.fold"] = info["fold"]
        flat[f"final.{model}.test_auc"] = info["test_auc"]
        if info["external_auc"] is not None:
            flat[f"final.{model}.external_auc"] = info["external_auc"]
    with tracking.start_run(cfg, "evaluation", tags={"stage": "evaluation"}) as run:
        run.log_params({f"screening.{k}": v for k, v in cfg.get("screening", {}).items()}
                       | {f"evaluation.{k}": v for k, v in cfg.get("evaluation", {}).items()})  # fmt: skip
        items = list(flat.items())
        for start in range(0, len(items), 500):  # MLflow accepts at most 1000 metrics per batch
            run.log_metrics(dict(items[start:start + 500]))
        run.log_dict(final, "final_models.json")
        for path in files.values():
            run.log_artifact(path)
