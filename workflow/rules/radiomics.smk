# Radiomics (docs/radiomics.md): pyradiomics per centre in parallel, gathered; per-fold LASSO + L1-LR for
# every candidate k; k chosen by mean validation AUC over the folds.

RADIOMICS = "results/radiomics"


rule radiomics_extract:
    input:
        index=f"{PREPROCESS}/centers/{{center}}/index.parquet",
        images=f"{PREPROCESS}/centers/{{center}}/images.npy",
        masks=f"{PREPROCESS}/centers/{{center}}/masks.npy",
        params=repo_path(config["radiomics"]["params"]),
    output:
        features=f"{RADIOMICS}/centers/{{center}}.parquet",
        failures=f"{RADIOMICS}/centers/{{center}}.failures.csv",
    log:
        "logs/radiomics/extract_{center}.log",
    benchmark:
        "results/benchmarks/radiomics/extract_{center}.tsv"
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: int(config["radiomics"]["extract_threads"])
    resources:
        mem_mb=int(config["radiomics"]["extract_mem_mb"]),
    script:
        "../scripts/radiomics_extract.py"


rule radiomics_gather:
    input:
        features=lambda wc: expand(
            f"{RADIOMICS}/centers/{{center}}.parquet", center=center_slugs()
        ),
        failures=lambda wc: expand(
            f"{RADIOMICS}/centers/{{center}}.failures.csv", center=center_slugs()
        ),
    output:
        features=f"{RADIOMICS}/features.parquet",
        failures=f"{RADIOMICS}/failures.csv",
    log:
        "logs/radiomics/gather.log",
    conda:
        f"{ENVS}/radiomics.yaml"
    resources:
        mem_mb=4000,
    script:
        "../scripts/radiomics_gather.py"


rule radiomics_fold:
    input:
        features=f"{RADIOMICS}/features.parquet",
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        mlflow=MLFLOW_READY,
    output:
        scores=f"{RADIOMICS}/fold{{fold}}/scores.json",
        predictions=f"{RADIOMICS}/fold{{fold}}/predictions_by_k.parquet",
        model=f"{RADIOMICS}/fold{{fold}}/model.joblib",
        selected=f"{RADIOMICS}/fold{{fold}}/selected.csv",
    log:
        "logs/radiomics/fold{fold}.log",
    benchmark:
        "results/benchmarks/radiomics/fold{fold}.tsv"
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        cfg=cfg_sections("radiomics"),
    script:
        "../scripts/radiomics_fold.py"


rule radiomics_choose:
    input:
        scores=expand(f"{RADIOMICS}/fold{{fold}}/scores.json", fold=FOLDS),
        predictions=expand(
            f"{RADIOMICS}/fold{{fold}}/predictions_by_k.parquet", fold=FOLDS
        ),
        selected=expand(f"{RADIOMICS}/fold{{fold}}/selected.csv", fold=FOLDS),
        mlflow=MLFLOW_READY,
    output:
        chosen=f"{RADIOMICS}/chosen_k.json",
        predictions=f"{RADIOMICS}/predictions.parquet",
        selected=f"{RADIOMICS}/selected_features.csv",
        cv_scores=f"{RADIOMICS}/cv_scores.csv",
        recurrence=f"{RADIOMICS}/feature_recurrence.csv",
    log:
        "logs/radiomics/choose.log",
    conda:
        f"{ENVS}/radiomics.yaml"
    resources:
        mem_mb=2000,
    script:
        "../scripts/radiomics_choose.py"
