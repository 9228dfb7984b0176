# Cohort: the synthetic cohort (when configured), validation of every input, preprocessing, splits.

if config["cohort"]["synthetic"]:

    rule synth_cohort:
        output:
            manifest=MANIFEST,
        params:
            cfg=cfg_sections("synthetic"),
            out=COHORT,
        threads: config["synthetic"]["workers"]
        conda:
            f"{ENVS}/cohort.yaml"
        log:
            "logs/cohort/synth.log",
        benchmark:
            "results/benchmarks/cohort/synth.tsv"
        resources:
            mem_mb=2000,
        script:
            "../scripts/cohort_synth.py"


checkpoint validate_cohort:
    input:
        manifest=MANIFEST,
    output:
        validation="results/validation/report.json",
    conda:
        f"{ENVS}/cohort.yaml"
    log:
        "logs/cohort/validate.log",
    resources:
        mem_mb=2000,
    script:
        "../scripts/cohort_validate.py"


rule preprocess_center:
    input:
        manifest=MANIFEST,
        validation="results/validation/report.json",
    output:
        images=f"{PREPROCESS}/centers/{{center}}/images.npy",
        masks=f"{PREPROCESS}/centers/{{center}}/masks.npy",
        index=f"{PREPROCESS}/centers/{{center}}/index.parquet",
    params:
        cfg=cfg_sections("preprocessing"),
        cohort=COHORT,
    conda:
        f"{ENVS}/cohort.yaml"
    log:
        "logs/preprocess/{center}.log",
    benchmark:
        "results/benchmarks/preprocess/{center}.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/preprocess_center.py"


rule preprocess_gather:
    input:
        preprocessed_centers,
    output:
        index=f"{PREPROCESS}/index.parquet",
    conda:
        f"{ENVS}/cohort.yaml"
    log:
        "logs/preprocess/gather.log",
    script:
        "../scripts/preprocess_gather.py"


rule split_patients:
    input:
        manifest=MANIFEST,
        validation="results/validation/report.json",
    output:
        splits="results/splits/splits.json",
    params:
        cfg=cfg_sections("splits"),
    conda:
        f"{ENVS}/cohort.yaml"
    log:
        "logs/splits/split.log",
    script:
        "../scripts/split_patients.py"


rule mlflow_init:
    output:
        MLFLOW_STATE,
    params:
        cfg=cfg_sections("mlflow", "cohort"),
    conda:
        f"{ENVS}/cohort.yaml"
    log:
        "logs/mlflow/init.log",
    script:
        "../scripts/mlflow_init.py"


if config["acdc"]["source"]:

    rule import_acdc:
        output:
            manifest=MANIFEST,
        params:
            cfg=cfg_sections("acdc"),
            source=repo_path(config["acdc"]["source"]),
            external=repo_path(config["acdc"]["external_source"]),
            out=COHORT,
        conda:
            f"{ENVS}/cohort.yaml"
        log:
            "logs/cohort/import_acdc.log",
        benchmark:
            "results/benchmarks/cohort/import_acdc.tsv"
        resources:
            mem_mb=2000,
        script:
            "../scripts/cohort_import_acdc.py"
