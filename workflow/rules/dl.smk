# Deep-learning model (docs/dl.md): tune once on a development fold, train one job per fold, gather.
# Every job reads the preprocessed store directly (index + per-centre arrays); only the tuning fold's
# train/val images reach the tuner, only each fold's train images reach its weights.


rule dl_tune:
    input:
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        arrays=preprocessed_arrays,
        mlflow=MLFLOW_READY,
    output:
        params="results/dl/tuning/best_params.json",
    log:
        "logs/dl/tune.log",
    benchmark:
        "results/benchmarks/dl/tune.tsv"
    priority: CNN_PATH_PRIORITY
    conda:
        f"{ENVS}/dl.yaml"
    threads: config["dl"]["threads"]
    resources:
        mem_mb=config["dl"]["mem_mb"],
        gpu=config["dl"]["gpus"],
    params:
        cfg=cfg_sections("dl"),
    script:
        "../scripts/dl_tune.py"


rule dl_train:
    input:
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        arrays=preprocessed_arrays,
        params="results/dl/tuning/best_params.json",
        mlflow=MLFLOW_READY,
    output:
        model="results/dl/fold{fold}/model.ckpt",
        hparams="results/dl/fold{fold}/hparams.json",
        predictions="results/dl/fold{fold}/predictions.parquet",
        features="results/dl/fold{fold}/features.parquet",
        curve="results/dl/fold{fold}/selection_curve.csv",
        gradcam="results/dl/gradcam/fold{fold}/done.json",
    log:
        "logs/dl/train_fold{fold}.log",
    benchmark:
        "results/benchmarks/dl/train_fold{fold}.tsv"
    priority: CNN_PATH_PRIORITY
    conda:
        f"{ENVS}/dl.yaml"
    threads: config["dl"]["threads"]
    resources:
        mem_mb=config["dl"]["mem_mb"],
        gpu=config["dl"]["gpus"],
    params:
        cfg=cfg_sections("dl"),
    script:
        "../scripts/dl_train.py"


rule dl_gather:
    input:
        predictions=expand("results/dl/fold{fold}/predictions.parquet", fold=FOLDS),
    output:
        predictions="results/dl/predictions.parquet",
        spread="results/dl/fold_spread.csv",
    log:
        "logs/dl/gather.log",
    conda:
        f"{ENVS}/dl.yaml"
    resources:
        mem_mb=1000,
    script:
        "../scripts/dl_gather.py"
