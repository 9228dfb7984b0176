"""Fusion stacking (issue 13 item 7): does fitting the fused classifier on DL values of the CNN's *own*
training images change its validation AUC, against DL values from CNNs that never saw those images?

For a finished study run (`--directory RUN` with results/ from the workflow) and each chosen fold f
(training patients T, validation patients V, from results/splits/splits.json), it fits the study's own fused
model (`cinescar.fusion.model.fit_fold`, restricted to the (k, classifier) of results/fusion/choice.json, the
run's `fusion`/`radiomics`/`seed` config from the bundle's provenance record) on

- paper-256 (study):    radiomics + the 256 DL features of fold CNN f, as the study computed it
                        (results/fusion/fold{f}/predictions_by_config.parquet, read, not refitted);
- paper-256 (refit):    the same, refitted here -- checks that this script reproduces the study's fit;
- paper-prob:           radiomics + ONE column, CNN f's probability (T's values: CNN f on its own training images);
- inner-oof-prob:       radiomics + ONE column whose T values are out of fold: T is split patient-wise
                        (stratified by label) into `--inner` parts, an inner CNN is trained on T minus each part
                        with the fold CNN's hyper-parameters (`dl` config + results/dl/tuning/best_params.json),
                        CPU, seed fixed, and predicts the held-out part. V's column is CNN f's probability, as
                        in paper-prob.

Why one probability column: the 256 hidden units of different CNNs are not aligned (unit 17 of one inner CNN is
not unit 17 of another), so only an aligned quantity can be stacked out of fold; paper-prob vs inner-oof-prob
is the like-for-like comparison, paper-256 is reported beside it.

The inner CNN chooses its epoch (and stops early) on its held-out part, as CNN f chose its epoch on V: the
out-of-fold values of T are then "selected on themselves" exactly as V's values are. V, the internal-test and
the external patients never enter an inner CNN (checked, not assumed) nor any fit; the fused classifier sees
only T's `train` images. Reported per fold and as mean (SD over folds): validation AUC at image level (the
fold's `val` images, as the fusion stage scores them) and patient level (all images of V, max rule,
`cinescar.screening_rule`), the difference paper-prob - inner-oof-prob, and the CPU seconds spent.

Usage (outputs, inner-CNN caches and a CSV go to --out, never into RUN):
    nice -n 19 .venv/bin/python benchmarks/fusion_stacking.py --directory /tmp/acdc-run --folds 0 1 \
        --out /tmp/h13/stacking
A measurement, not a test: nothing is asserted about the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from cinescar.config import load_config, schema_section
from cinescar.errors import CinescarError
from cinescar.fusion.model import FusionSettings, fit_fold, fuse_features
from cinescar.cohort.splits import check_disjoint, fold_images, load_splits

INNER_SEED_OFFSET = 500
"""Inner CNN j of fold f trains with seed + f + 500 (j + 1): never the seed of a fold CNN (seed + f, + 1000 s)."""

VARIANTS = {"paper256_study": "paper-256 (study; job CPU, all configs)", "paper256_refit": "paper-256 (refit here)",
            "paper_prob": "paper-prob", "inner_oof_prob": "inner-oof-prob", "dl_alone": "DL alone (CNN f)"}
"""Variant key -> label in the printed table."""

PROB_COLUMN = "dl_000"
"""The one DL column of the probability variants, named so that `fuse_features` accepts it as a DL feature."""


def fold_of(splits: dict, fold: int) -> dict:
    f = next((x for x in splits["folds"] if int(x["fold"]) == int(fold)), None)
    if f is None:
        raise CinescarError(f"fold {fold} is not in the splits (folds: {[x['fold'] for x in splits['folds']]})")
    return f


def inner_splits(index: pd.DataFrame, splits: dict, fold: int, n_inner: int, seed: int) -> dict:
    """Fold `fold`'s training patients T split patient-wise (stratified by label) into `n_inner` parts, in the
    splits-file shape (`folds[j]` = {"train": T minus part j, "val": part j}; no test or external patients),
    so that `fold_images` gives each inner CNN its images by the same contract as the study's folds.

    Raises when a part would touch V, the internal test or the external patients, or hold one class.
    """
    f = fold_of(splits, fold)
    train = sorted(str(p) for p in f["train"])
    labels = index.assign(patient_id=index["patient_id"].astype(str)).groupby("patient_id")["lge"].max()
    y = labels.reindex(train).to_numpy()
    if np.isnan(y.astype(float)).any():
        raise CinescarError(f"fold {fold}: training patients without images in the index")
    skf = StratifiedKFold(n_splits=int(n_inner), shuffle=True, random_state=int(seed))
    parts = []
    for j, (tr, va) in enumerate(skf.split(np.zeros(len(train)), y.astype(int))):
        for name, ids in (("inner training set", tr), ("inner part", va)):
            if len(set(y[ids].astype(int))) < 2:
                raise CinescarError(f"fold {fold}, inner part {j}: the {name} holds one class; use fewer parts")
        parts.append({"fold": j, "train": [train[i] for i in tr], "val": [train[i] for i in va]})
    inner = {"seed": int(seed), "test": [], "external": [], "folds": parts}
    check_disjoint(inner)
    outside = set(map(str, f["val"])) | set(map(str, splits["test"])) | set(map(str, splits["external"]))
    for p in parts:
        if outside & (set(p["train"]) | set(p["val"])):
            raise CinescarError(f"fold {fold}: inner part {p['fold']} holds a V/test/external patient")
    held = [pid for p in parts for pid in p["val"]]
    if sorted(held) != train:
        raise CinescarError(f"fold {fold}: the inner parts do not cover T exactly once")
    return inner


def fold_cnn_probabilities(run: Path, fold: int) -> pd.Series:
    """CNN f's probability of every image, from its saved DL features and its output layer (exact: the features
    are the 256-unit layer the logit is computed from, and dropout is off in eval mode)."""
    import torch

    from cinescar.dl.inference import load_model

    net = load_model(run / f"results/dl/fold{fold}/model.ckpt")
    feats = pd.read_parquet(run / f"results/dl/fold{fold}/features.parquet")
    x = torch.from_numpy(feats.drop(columns="image_id").to_numpy(np.float32, copy=True))
    with torch.inference_mode():
        prob = torch.sigmoid(net.head.out(x).squeeze(1)).numpy()
    return pd.Series(prob.astype(np.float64), index=feats["image_id"].astype(str).to_numpy())


def train_inner(index: pd.DataFrame, inner: dict, run: Path, cfg: dict, fold: int, out: Path,
                threads: int) -> tuple[pd.Series, dict]:  # fmt: skip
    """Out-of-fold probabilities of T's `train` images from the inner CNNs (cached in `out`), with cost and
    each inner CNN's chosen epoch."""
    import torch

    from cinescar.dl.features import predict_index
    from cinescar.dl.train import fit_network, merged_params, role_arrays

    store = run / "results/preprocess"
    dl_cfg = schema_section(cfg, "dl")
    tuned = json.loads((run / "results/dl/tuning/best_params.json").read_text())["params"]
    params = merged_params(dl_cfg, tuned)
    training = {**schema_section(dl_cfg, "training", defaults=("dl", "training")), "accelerator": "cpu"}
    key = {"fold": fold, "parts": inner["folds"], "params": params, "training": training,
           "augmentation": dl_cfg.get("augmentation", {}), "seed": int(cfg["seed"]), "threads": threads}
    cache = out / f"fold{fold}_inner_oof.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved["key"] == json.loads(json.dumps(key)):
            saved["info"]["reused_cache"] = str(cache)
            return pd.Series(saved["prob"]), saved["info"]
    torch.set_num_threads(int(threads))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    probs, epochs = {}, []
    for part in inner["folds"]:
        j = int(part["fold"])
        roles = fold_images(index, inner, j)
        seed = int(cfg["seed"]) + fold + INNER_SEED_OFFSET * (j + 1)
        res = fit_network(role_arrays(roles["train"], store), role_arrays(roles["val"], store), params, training,
                          dl_cfg.get("augmentation", {}), seed, root_dir=out,
                          val_groups=roles["val"]["patient_id"].astype(str).to_numpy())
        p, _ = predict_index(res.net, roles["val"], store, batch_size=int(dl_cfg["inference_batch_size"]))
        probs.update(dict(zip(roles["val"]["image_id"].astype(str), p.astype(float))))
        epochs.append({"part": j, "n_train_patients": len(part["train"]), "n_part_patients": len(part["val"]),
                       "best_epoch": int(res.best["epoch"]), "epochs_run": len(res.history),
                       "part_val_auc": float(res.best.get("val_auc", float("nan")))})
        print(f"  fold {fold} inner CNN {j}: {len(part['train'])} patients, best epoch {res.best['epoch']} of "
              f"{len(res.history)}, held-out image AUC {res.best.get('val_auc', float('nan')):.3f}", flush=True)
    info = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0, "inner_cnns": epochs}
    cache.write_text(json.dumps({"key": key, "prob": probs, "info": info}, indent=1, default=str))
    return pd.Series(probs), info


def evaluate(preds: pd.DataFrame) -> dict:
    """Validation AUC of one fold's predictions (split `val` rows = all images of V): image level on the
    `dev_selected` images (as the fusion stage scores a configuration), patient level by the max rule."""
    from cinescar.dl.module import epoch_auc, patient_auc

    val = preds[preds["split"] == "val"]
    dev = val[val["dev_selected"].astype(bool)]
    from cinescar.screening_rule import PATIENT_AGGREGATE

    patients = val.groupby("patient_id", sort=True).agg(lge=("lge", "max"), prob=("prob", PATIENT_AGGREGATE))
    return {"image_auc": epoch_auc(dev["lge"].to_numpy(), dev["prob"].to_numpy()),
            "patient_auc": patient_auc(val["lge"].to_numpy(), val["prob"].to_numpy(), val["patient_id"].to_numpy()),
            "patients": patients}


def fit_variant(radiomics: pd.DataFrame, dl: pd.DataFrame, index: pd.DataFrame, splits: dict, fold: int,
                settings: FusionSettings) -> dict:  # fmt: skip
    """The study's fused fit of one fold at its chosen (k, classifier); AUCs, CPU seconds, DL columns selected."""
    cpu0 = time.process_time()
    res = fit_fold(fuse_features(radiomics, dl), index, splits, fold, settings)
    cpu = time.process_time() - cpu0
    k = settings.k_candidates[0]
    selected = [r["feature"] for r in res.scores["selected"][str(k)]]
    dl_ranks = [i + 1 for i, n in enumerate(selected) if n.startswith("dl_")]
    return {**evaluate(res.predictions_by_config), "cpu_s": cpu, "dl_selected": len(dl_ranks),
            "dl_ranks": dl_ranks, "selected": selected}


def probability_table(values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"image_id": values.index.astype(str), PROB_COLUMN: values.to_numpy(np.float64)})


def quiet() -> None:
    """Lightning's hint that `srun` exists on this machine (a SLURM test node) says nothing about this run."""
    import warnings

    warnings.filterwarnings("ignore", message=".*srun.*")


def machine() -> str:
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--directory", required=True, type=Path, help="finished study run (holds results/)")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--inner", type=int, default=3, help="inner parts of each fold's training patients")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fusion_stacking"),
                    help="caches and the CSV (never inside RUN/results)")
    ap.add_argument("--configfile", type=Path, default=None,
                    help="the run's config (default: the bundle's provenance record, results/bundle/metadata.json)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the inner CNNs (default dl.threads)")
    args = ap.parse_args(argv)
    quiet()
    run = args.directory.resolve()
    out = args.out.resolve()
    if out == run / "results" or (run / "results") in out.parents:
        raise SystemExit("--out must not lie inside the run's results/")
    out.mkdir(parents=True, exist_ok=True)
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print("machine at start:", machine(), flush=True)

    cfg = (load_config(args.configfile) if args.configfile
           else json.loads((run / "results/bundle/metadata.json").read_text())["config"])
    choice = json.loads((run / "results/fusion/choice.json").read_text())
    k, clf = int(choice["k"]), str(choice["classifier"])
    settings = dataclasses.replace(FusionSettings.from_config(cfg, threads=int(cfg["fusion"].get("threads", 1))),
                                   k_candidates=(k,), classifiers=(clf,), k_classifier=clf)
    threads = int(args.threads or schema_section(cfg, "dl")["threads"])
    index = pd.read_parquet(run / "results/preprocess/index.parquet")
    splits = load_splits(run / "results/splits/splits.json")
    radiomics = pd.read_parquet(run / "results/radiomics/features.parquet")
    rad_preds = pd.read_parquet(run / "results/radiomics/predictions.parquet")
    print(f"study's fused model: k={k}, classifier={clf}; inner parts {args.inner}; inner CNN threads {threads}; "
          f"dl.seeds {schema_section(cfg, 'dl')['seeds']} (inner CNNs and the probability column: first seed)")

    rows = []
    pooled: dict[str, list[pd.DataFrame]] = {v: [] for v in VARIANTS}
    for fold in args.folds:
        f = fold_of(splits, fold)
        print(f"\nfold {fold}: T = {len(f['train'])} patients, V = {len(f['val'])} patients", flush=True)
        cnn = fold_cnn_probabilities(run, fold)
        study_dl = pd.read_parquet(run / f"results/dl/fold{fold}/predictions.parquet")
        val_dl = study_dl[study_dl["split"] == "val"]
        gap = float(np.max(np.abs(cnn.loc[val_dl["image_id"].astype(str)].to_numpy() - val_dl["prob"].to_numpy())))
        print(f"  CNN f probability from features + output layer vs the study's predictions (V): max |diff| "
              f"{gap:.2e}" + (" (dl.seeds > 1: the study averages seeds)" if gap > 1e-4 else ""))
        row = {"fold": fold, "n_T": len(f["train"]), "n_V": len(f["val"])}

        by_cfg = pd.read_parquet(run / f"results/fusion/fold{fold}/predictions_by_config.parquet")
        study = evaluate(by_cfg[(by_cfg["k"] == k) & (by_cfg["classifier"] == clf)])
        bench = pd.read_csv(run / f"results/benchmarks/fusion/fold{fold}.tsv", sep="\t")
        row |= {f"paper256_study_{m}": study[m] for m in ("image_auc", "patient_auc")}
        pooled["paper256_study"].append(study["patients"])
        row["paper256_study_cpu_s_all_configs"] = float(bench["cpu_time"].iloc[0])

        dl256 = pd.read_parquet(run / f"results/dl/fold{fold}/features.parquet")
        r = fit_variant(radiomics, dl256, index, splits, fold, settings)
        row |= {f"paper256_refit_{m}": r[m] for m in ("image_auc", "patient_auc", "cpu_s", "dl_selected")}
        pooled["paper256_refit"].append(r["patients"])

        r = fit_variant(radiomics, probability_table(cnn), index, splits, fold, settings)
        paper_selected = r["selected"]
        row |= {f"paper_prob_{m}": r[m] for m in ("image_auc", "patient_auc", "cpu_s", "dl_selected")}
        pooled["paper_prob"].append(r["patients"])
        row["paper_prob_dl_rank"] = r["dl_ranks"][0] if r["dl_ranks"] else None

        inner = inner_splits(index, splits, fold, args.inner, int(cfg["seed"]) + fold)
        oof, info = train_inner(index, inner, run, cfg, fold, out, threads)
        train_ids = fold_images(index, splits, fold)["train"]["image_id"].astype(str)
        missing = sorted(set(train_ids) - set(oof.index))
        if missing:
            raise CinescarError(f"fold {fold}: {len(missing)} training image(s) without an out-of-fold value")
        stacked = cnn.copy()
        stacked.loc[train_ids.to_numpy()] = oof.loc[train_ids.to_numpy()].to_numpy()  # T out of fold; V, test: CNN f
        r = fit_variant(radiomics, probability_table(stacked), index, splits, fold, settings)
        row |= {f"inner_oof_prob_{m}": r[m] for m in ("image_auc", "patient_auc", "dl_selected")}
        pooled["inner_oof_prob"].append(r["patients"])
        row["inner_oof_prob_dl_rank"] = r["dl_ranks"][0] if r["dl_ranks"] else None
        # same radiomics features selected (in any order) by both probability variants: a difference between them
        # then comes from the DL column and the classifier's randomness over column order, not from selection
        row["prob_variants_shared_radiomics"] = len({n for n in paper_selected if n != PROB_COLUMN}
                                                    & {n for n in r["selected"] if n != PROB_COLUMN})
        row["inner_oof_prob_cpu_s"] = info["cpu_s"] + r["cpu_s"]
        row["inner_cnn_wall_s"] = info["wall_s"]
        row["inner_cache"] = info.get("reused_cache", "")
        bench_dl = pd.read_csv(run / f"results/benchmarks/dl/train_fold{fold}.tsv", sep="\t")
        row["fold_cnn_cpu_s"] = float(bench_dl["cpu_time"].iloc[0])

        from cinescar.dl.module import epoch_auc, patient_auc

        val_dev = val_dl[val_dl["dev_selected"].astype(bool)]
        row["dl_alone_image_auc"] = epoch_auc(val_dev["lge"].to_numpy(), val_dev["prob"].to_numpy())
        dl_alone = evaluate(study_dl)
        row["dl_alone_patient_auc"] = dl_alone["patient_auc"]
        pooled["dl_alone"].append(dl_alone["patients"])
        train_dl = cnn.loc[train_ids.to_numpy()].to_numpy()
        y_train = fold_images(index, splits, fold)["train"]["lge"].to_numpy()
        row["cnn_f_on_T_image_auc"] = epoch_auc(y_train, train_dl)
        row["oof_on_T_image_auc"] = epoch_auc(y_train, oof.loc[train_ids.to_numpy()].to_numpy())
        rv = rad_preds[(rad_preds["fold"] == fold) & (rad_preds["split"] == "val")]
        row["radiomics_alone_patient_auc"] = patient_auc(rv["lge"].to_numpy(), rv["prob"].to_numpy(),
                                                         rv["patient_id"].to_numpy())
        for level in ("image", "patient"):
            row[f"diff_{level}"] = row[f"paper_prob_{level}_auc"] - row[f"inner_oof_prob_{level}_auc"]
        rows.append(row)
        print(f"  DL value of T's images, image AUC on T: CNN f (fitted) {row['cnn_f_on_T_image_auc']:.3f}, "
              f"out of fold {row['oof_on_T_image_auc']:.3f}")
        print(f"  validation AUC image / patient: paper-256 study {row['paper256_study_image_auc']:.3f} / "
              f"{row['paper256_study_patient_auc']:.3f}, refit {row['paper256_refit_image_auc']:.3f} / "
              f"{row['paper256_refit_patient_auc']:.3f}; paper-prob {row['paper_prob_image_auc']:.3f} / "
              f"{row['paper_prob_patient_auc']:.3f}; inner-oof-prob {row['inner_oof_prob_image_auc']:.3f} / "
              f"{row['inner_oof_prob_patient_auc']:.3f}; DL alone {row['dl_alone_image_auc']:.3f} / "
              f"{row['dl_alone_patient_auc']:.3f}", flush=True)

    table = pd.DataFrame(rows)
    table.to_csv(out / "fusion_stacking.csv", index=False)
    cpu_of = {"paper256_study": "paper256_study_cpu_s_all_configs", "paper256_refit": "paper256_refit_cpu_s",
              "paper_prob": "paper_prob_cpu_s", "inner_oof_prob": "inner_oof_prob_cpu_s", "dl_alone": None}
    show = [(VARIANTS[v], v, cpu_of[v]) for v in VARIANTS]
    folds_hdr = " | ".join(f"fold {f} img / pat" for f in table["fold"])
    print(f"\nvalidation AUC (image level / patient level, max rule); k={k}, {clf}; CPU s = this variant's cost")
    from cinescar.dl.module import epoch_auc
    from cinescar.evaluation.delong import delong_test

    pooled_tables = {v: pd.concat(t) for v, t in pooled.items()}
    print(f"| variant | {folds_hdr} | mean img / pat (SD over folds) | pooled pat | CPU s per fold |")
    print("|---|" + "---|" * (len(table) + 3))
    for label, pre, cpu in show:
        cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(table[f"{pre}_image_auc"], table[f"{pre}_patient_auc"]))
        mean = (f"{table[f'{pre}_image_auc'].mean():.3f} / {table[f'{pre}_patient_auc'].mean():.3f} "
                f"({table[f'{pre}_image_auc'].std(ddof=1):.3f} / {table[f'{pre}_patient_auc'].std(ddof=1):.3f})")
        cpus = " ".join(f"{c:.0f}" for c in table[cpu]) if cpu else "-"
        pt = pooled_tables[pre]
        print(f"| {label} | {cells} | {mean} | {epoch_auc(pt['lge'].to_numpy(), pt['prob'].to_numpy()):.3f} | {cpus} |")
    cells = " | ".join(f"{a:+.3f} / {b:+.3f}" for a, b in zip(table["diff_image"], table["diff_patient"]))
    print(f"| paper-prob - inner-oof-prob | {cells} | {table['diff_image'].mean():+.3f} / "
          f"{table['diff_patient'].mean():+.3f} ({table['diff_image'].std(ddof=1):.3f} / "
          f"{table['diff_patient'].std(ddof=1):.3f}) | - | - |")
    n_pat = len(pooled_tables["paper_prob"])
    print(f"\npooled patient level = all V patients of the folds above ({n_pat} patients, "
          f"{int(pooled_tables['paper_prob']['lge'].sum())} LGE+), each scored by its own fold's models; "
          "paired DeLong test on them:")
    for a, b in (("paper_prob", "inner_oof_prob"), ("paper256_study", "inner_oof_prob"), ("paper256_study", "dl_alone")):
        ta, tb = pooled_tables[a], pooled_tables[b].reindex(pooled_tables[a].index)
        d = delong_test(ta["lge"].to_numpy(), ta["prob"].to_numpy(), tb["prob"].to_numpy())
        print(f"  {VARIANTS[a]} - {VARIANTS[b]}: {d.diff:+.3f} (SE {d.se:.3f}, p = {d.p:.2f})")
    print("\nDL column selected among k (rank): paper-prob",
          [f"fold {r['fold']}: {r['paper_prob_dl_rank']}" for r in rows], "; inner-oof-prob",
          [f"fold {r['fold']}: {r['inner_oof_prob_dl_rank']}" for r in rows])
    print(f"radiomics features shared by the two probability variants' k={k} selections:",
          [f"fold {r['fold']}: {r['prob_variants_shared_radiomics']}" for r in rows])
    print("DL probability's image AUC on T: CNN f (its own training images)",
          [round(x, 3) for x in table["cnn_f_on_T_image_auc"]], "; out of fold",
          [round(x, 3) for x in table["oof_on_T_image_auc"]])
    print("radiomics alone, validation patient AUC:", [round(x, 3) for x in table["radiomics_alone_patient_auc"]])
    print("CPU s: fold CNN (study, dl_train job)", [round(x) for x in table["fold_cnn_cpu_s"]],
          "; inner CNNs wall s", [round(x) for x in table["inner_cnn_wall_s"]],
          "; cache reused:", [bool(x) for x in table["inner_cache"]])
    print("machine at end:", machine())
    print("table:", out / "fusion_stacking.csv")


if __name__ == "__main__":
    main()
