# DL-Radiomics fusion (docs/evaluation.md, "Fused model"): per fold, the fold's own DL features + radiomics
# features -> LASSO (the Radiomics model's selector) -> every (k, classifier) fitted on train, scored on val;
# then k and the classifier chosen over the folds (Table S1).

FUSION = "results/fusion"


rule fusion_fold:
    input:
        radiomics="results/radiomics/features.parquet",
        dl="results/dl/fold{fold}/features.parquet",
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        mlflow=MLFLOW_READY,
    output:
        scores=f"{FUSION}/fold{{fold}}/scores.json",
        predictions=f"{FUSION}/fold{{fold}}/predictions_by_config.parquet",
        model=f"{FUSION}/fold{{fold}}/model.joblib",
    log:
        "logs/fusion/fold{fold}.log",
    benchmark:
        "results/benchmarks/fusion/fold{fold}.tsv"
    conda:
        f"{ENVS}/evaluation.yaml"
    threads: int(config["fusion"]["threads"])
    resources:
        mem_mb=4000,
    params:
        cfg=cfg_sections("fusion", "radiomics"),
    script:
        "../scripts/fusion_fold.py"


rule fusion_choose:
    input:
        scores=expand(f"{FUSION}/fold{{fold}}/scores.json", fold=FOLDS),
        predictions=expand(
            f"{FUSION}/fold{{fold}}/predictions_by_config.parquet", fold=FOLDS
        ),
        mlflow=MLFLOW_READY,
    output:
        choice=f"{FUSION}/choice.json",
        classifiers=f"{FUSION}/classifiers.csv",
        predictions=f"{FUSION}/predictions.parquet",
        selected=f"{FUSION}/selected_features.csv",
    log:
        "logs/fusion/choose.log",
    conda:
        f"{ENVS}/evaluation.yaml"
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("fusion"),
    script:
        "../scripts/fusion_choose.py"
