# Baselines and shortcut controls (docs/evaluation.md, "Baselines and controls"): the clinical model, each
# image model combined with the clinical variables (out of fold), and two controls (mask shape only, slice
# position only). Every one writes the shared predictions contract under results/baselines/{model}/.

BASELINES = "results/baselines"


rule baselines_clinical:
    input:
        manifest=MANIFEST,
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        mlflow=MLFLOW_READY,
    output:
        predictions=f"{BASELINES}/clinical/predictions.parquet",
        status=f"{BASELINES}/clinical/status.json",
        model=f"{BASELINES}/clinical/model.joblib",
    log:
        "logs/baselines/clinical.log",
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("clinical"),
    script:
        "../scripts/baselines_clinical.py"


rule baselines_combined:
    input:
        image="results/{image_model}/predictions.parquet",
        manifest=MANIFEST,
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        mlflow=MLFLOW_READY,
    output:
        predictions=f"{BASELINES}/{{image_model}}_clinical/predictions.parquet",
        status=f"{BASELINES}/{{image_model}}_clinical/status.json",
        model=f"{BASELINES}/{{image_model}}_clinical/model.joblib",
    log:
        "logs/baselines/{image_model}_clinical.log",
    wildcard_constraints:
        image_model="radiomics|dl|fusion",
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("clinical"),
    script:
        "../scripts/baselines_combined.py"


rule baselines_shape_control:
    input:
        features="results/radiomics/features.parquet",
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        mlflow=MLFLOW_READY,
    output:
        predictions=f"{BASELINES}/shape_control/predictions.parquet",
        status=f"{BASELINES}/shape_control/status.json",
        model=f"{BASELINES}/shape_control/model.joblib",
    log:
        "logs/baselines/shape_control.log",
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("radiomics"),
        kind="shape_control",
    script:
        "../scripts/baselines_control.py"


rule baselines_slice_control:
    input:
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        mlflow=MLFLOW_READY,
    output:
        predictions=f"{BASELINES}/slice_control/predictions.parquet",
        status=f"{BASELINES}/slice_control/status.json",
        model=f"{BASELINES}/slice_control/model.joblib",
    log:
        "logs/baselines/slice_control.log",
    conda:
        f"{ENVS}/radiomics.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("radiomics"),
        kind="slice_control",
    script:
        "../scripts/baselines_control.py"
