# Segmentation (docs/segmentation.md): the myocardium segmenter trained inside the study. The cross-fit split
# decides which development patients each network sees; each network trains on the others' manual masks;
# each centre's patients are segmented by the network that never saw them (development) or by the mean of all
# (internal test, external); the gather measures Dice, HD95, volumes and QC flags. Predicted masks reach the
# preprocessing only where `segmentation.masks` asks for them (common.smk: `mask_sources_of`).

SEGMENTATION = "results/segmentation"
SEG_FOLDS = list(range(int(config["segmentation"]["crossfit_folds"])))
# the masks-only cohorts' manifests (made by import_acdc_masks_only, or a user's folders)
EXTRA_MANIFESTS = [f"{p}/manifest.csv" for p in config["segmentation"]["extra_cohorts"]]


rule segmentation_split:
    input:
        splits="results/splits/splits.json",
        extra=EXTRA_MANIFESTS,
    output:
        crossfit=f"{SEGMENTATION}/crossfit.json",
    log:
        "logs/segmentation/split.log",
    conda:
        f"{ENVS}/dl.yaml"
    params:
        cfg=cfg_sections("segmentation"),
    script:
        "../scripts/segmentation_split.py"


rule segmentation_train:
    input:
        manifest=MANIFEST,
        validation=ancient("results/validation/report.json"),
        crossfit=f"{SEGMENTATION}/crossfit.json",
        extra=EXTRA_MANIFESTS,
        mlflow=MLFLOW_READY,
    output:
        model=f"{SEGMENTATION}/fold{{fold}}/model.pt",
        meta=f"{SEGMENTATION}/fold{{fold}}/model.json",
    log:
        "logs/segmentation/train_fold{fold}.log",
    benchmark:
        "results/benchmarks/segmentation/train_fold{fold}.tsv"
    conda:
        f"{ENVS}/dl.yaml"
    threads: config["segmentation"]["threads"]
    resources:
        mem_mb=4000,
    params:
        cfg=cfg_sections("segmentation", "preprocessing"),
    script:
        "../scripts/segmentation_train.py"


rule segmentation_predict:
    input:
        manifest=MANIFEST,
        validation=ancient("results/validation/report.json"),
        crossfit=f"{SEGMENTATION}/crossfit.json",
        models=expand(f"{SEGMENTATION}/fold{{fold}}/model.pt", fold=SEG_FOLDS),
        metas=expand(f"{SEGMENTATION}/fold{{fold}}/model.json", fold=SEG_FOLDS),
        files=center_files,
    output:
        masks=directory(f"{SEGMENTATION}/masks/{{center}}"),
        table=f"{SEGMENTATION}/centers/{{center}}.parquet",
    log:
        "logs/segmentation/predict_{center}.log",
    benchmark:
        "results/benchmarks/segmentation/predict_{center}.tsv"
    conda:
        f"{ENVS}/dl.yaml"
    threads: config["segmentation"]["threads"]
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("segmentation", "preprocessing"),
    script:
        "../scripts/segmentation_predict.py"


rule segmentation_gather:
    input:
        tables=lambda wc: expand(
            f"{SEGMENTATION}/centers/{{center}}.parquet", center=center_slugs()
        ),
        mlflow=MLFLOW_READY,
    output:
        per_stack=f"{SEGMENTATION}/per_stack.csv",
        overlap=f"{SEGMENTATION}/overlap.csv",
        agreement=f"{SEGMENTATION}/agreement.csv",
        qc=f"{SEGMENTATION}/qc.csv",
    log:
        "logs/segmentation/gather.log",
    conda:
        f"{ENVS}/dl.yaml"
    params:
        cfg=cfg_sections("segmentation"),
    script:
        "../scripts/segmentation_gather.py"


# The deployment case (docs/segmentation.md): the shipped models on the segmenter's masks instead of the manual
# ones, patient by patient (development patients out of fold, held-out patients by the final model).
rule segmentation_deployment_center:
    input:
        bundle="results/bundle/bundle.json",
        splits="results/splits/splits.json",
        manifest=MANIFEST,
        validation=ancient("results/validation/report.json"),
        masks=f"{SEGMENTATION}/masks/{{center}}",
        files=center_files,
    output:
        patients=f"{SEGMENTATION}/deployment/{{center}}_patients.parquet",
        features=f"{SEGMENTATION}/deployment/{{center}}_features.parquet",
    log:
        "logs/segmentation/deployment_{center}.log",
    benchmark:
        "results/benchmarks/segmentation/deployment_{center}.tsv"
    conda:
        f"{ENVS}/dl.yaml"
    threads: config["segmentation"]["threads"]
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("segmentation"),
    script:
        "../scripts/segmentation_deployment_center.py"


rule segmentation_deployment:
    input:
        patients=lambda wc: expand(
            f"{SEGMENTATION}/deployment/{{center}}_patients.parquet",
            center=center_slugs(),
        ),
        features=lambda wc: expand(
            f"{SEGMENTATION}/deployment/{{center}}_features.parquet",
            center=center_slugs(),
        ),
        mlflow=MLFLOW_READY,
    output:
        comparison=f"{SEGMENTATION}/deployment.csv",
        patients=f"{SEGMENTATION}/deployment_patients.csv",
        icc=f"{SEGMENTATION}/feature_icc.csv",
    log:
        "logs/segmentation/deployment.log",
    conda:
        f"{ENVS}/evaluation.yaml"
    params:
        cfg=cfg_sections("segmentation", "mlflow"),
    script:
        "../scripts/segmentation_deployment.py"
