# Radiomics (docs/radiomics.md): pyradiomics in chunks of a centre's images (radiomics.extract_chunk_images)
# in parallel, gathered in order; per-fold LASSO + L1-LR for every candidate k; k chosen by mean validation
# AUC over the folds.


rule radiomics_extract:
    input:
        index=f"{PREPROCESS}/centers/{{center}}/index.parquet",
        images=f"{PREPROCESS}/centers/{{center}}/images.npy",
        masks=f"{PREPROCESS}/centers/{{center}}/masks.npy",
        params=repo_path(config["radiomics"]["params"]),
    output:
        features=f"{RADIOMICS}/chunks/{{center}}/{{chunk}}-of-{{n_chunks}}.parquet",
        failures=f"{RADIOMICS}/chunks/{{center}}/{{chunk}}-of-{{n_chunks}}.failures.csv",
    log:
        "logs/radiomics/extract_{center}_{chunk}-of-{n_chunks}.log",
    benchmark:
        "results/benchmarks/radiomics/extract_{center}_{chunk}-of-{n_chunks}.tsv"
    wildcard_constraints:
        chunk=r"\d+",
        n_chunks=r"\d+",
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: int(config["radiomics"]["extract_threads"])
    resources:
        mem_mb=int(config["radiomics"]["extract_mem_mb"]),
    script:
        "../scripts/radiomics_extract.py"


rule radiomics_gather:
    input:
        features=lambda wc: extraction_chunk_files("parquet"),
        failures=lambda wc: extraction_chunk_files("failures.csv"),
    output:
        features=f"{RADIOMICS}/features.parquet",
        failures=f"{RADIOMICS}/failures.csv",
    log:
        "logs/radiomics/gather.log",
    benchmark:
        "results/benchmarks/radiomics/gather.tsv"
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
