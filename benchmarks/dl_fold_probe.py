"""Probe DL settings on one run's store without the workflow: train chosen folds, print per-epoch curves,
the fold's validation and internal-test patient AUC (max rule) and the pooled out-of-fold AUC.

Usage (a run directory whose preprocessing and splits exist, e.g. after
`snakemake results/splits/splits.json results/preprocess/index.parquet --configfile config/acdc.yaml --directory RUN`):
    python benchmarks/dl_fold_probe.py RUN 0,1 '{"threads": 1, "network": {"base_width": 16},
        "training": {"learning_rate": 1e-4, "max_epochs": 40, "early_stopping_patience": 6}}'

The JSON overrides config/config.yaml's `dl` section (deep merge). Quick experiments only: the workflow
and benchmarks/acdc_study.py are the measurements of record.
"""
import json
import sys
import time

import torch
import yaml
import pandas as pd

from cinescar.dl.features import predict_index
from cinescar.dl.module import epoch_auc, patient_auc
from cinescar.dl.train import EpochCallback, fit_network, merged_params, role_arrays
from cinescar.cohort.splits import fold_images, load_splits
from cinescar.preprocessing.store import load_index


def deep_update(a: dict, b: dict) -> None:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            deep_update(a[k], v)
        else:
            a[k] = v


def main() -> None:
    run, folds, over = sys.argv[1], [int(f) for f in sys.argv[2].split(",")], json.loads(sys.argv[3])
    torch.set_num_threads(int(over.pop("threads", 2)))
    from cinescar.config import load_config

    dl = load_config()["dl"]  # config/config.yaml resolved (it holds only what differs from the schema)
    deep_update(dl, over)
    root = f"{run}/results/preprocess"
    index, splits = load_index(f"{root}/index.parquet"), load_splits(f"{run}/results/splits/splits.json")
    params, training = merged_params(dl), dl["training"]
    oof = []
    for f in folds:
        t0 = time.time()
        roles = fold_images(index, splits, f)

        def show(r, trainer):
            print(f"  ep {r['epoch']} {time.time() - t0:.0f}s auc {r['val_auc']:.3f} pat {r['val_patient_auc']:.3f} "
                  f"loss {r['val_loss']:.3f} tl {r['train_loss']:.3f}", flush=True)

        res = fit_network(role_arrays(roles["train"], root), role_arrays(roles["val"], root), params, training,
                          dl["augmentation"], 42 + f, callbacks=[EpochCallback(show)],
                          val_groups=roles["val"]["patient_id"].astype(str).to_numpy())
        probs, _ = predict_index(res.net, index, root, batch_size=64)
        p = pd.Series(probs, index=index["image_id"])
        out = {}
        for split in ("val_all", "test"):
            sub = roles[split]
            out[split] = patient_auc(sub["lge"].to_numpy(), p.loc[sub["image_id"]].to_numpy(),
                                     sub["patient_id"].to_numpy())
        sub = roles["val_all"]
        oof.append(pd.DataFrame({"pid": sub["patient_id"].to_numpy(), "y": sub["lge"].to_numpy(),
                                 "p": p.loc[sub["image_id"]].to_numpy()}))
        dt = time.time() - t0
        print(f"fold {f}: val patient AUC {out['val_all']:.3f}, test patient AUC {out['test']:.3f}, best epoch "
              f"{res.best['epoch']}, {len(res.history)} epochs, {dt:.0f} s, pos_weight {res.pos_weight}", flush=True)
    o = pd.concat(oof).groupby("pid").max()
    print("pooled out-of-fold patient AUC", round(epoch_auc(o["y"].to_numpy(), o["p"].to_numpy()), 3))


if __name__ == "__main__":
    main()
