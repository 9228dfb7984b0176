# Cohort: the synthetic cohort (when configured), validation of every input, preprocessing, splits.

if config["cohort"]["synthetic"]:

    checkpoint synth_cohort:
        output:
            manifest=MANIFEST,
        log:
            "logs/cohort/synth.log",
        benchmark:
            "results/benchmarks/cohort/synth.tsv"
        conda:
            f"{ENVS}/cohort.yaml"
        threads: config["synthetic"]["workers"]
        resources:
            mem_mb=2000,
        params:
            cfg=cfg_sections("synthetic"),
        script:
            "../scripts/cohort_synth.py"


checkpoint validate_cohort:
    input:
        manifest=MANIFEST,
        files=cohort_files,
    output:
        validation="results/validation/report.json",
    log:
        "logs/cohort/validate.log",
    conda:
        f"{ENVS}/cohort.yaml"
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("cohort", "splits", "preprocessing"),
    script:
        "../scripts/cohort_validate.py"


rule preprocess_center:
    input:
        unpack(predicted_masks_of),
        manifest=MANIFEST,
        # ancient: a rerun of validation (an image of another centre changed) does not rerun this centre
        validation=ancient("results/validation/report.json"),
        files=center_files,
    output:
        images=f"{PREPROCESS}/centers/{{center}}/images.npy",
        masks=f"{PREPROCESS}/centers/{{center}}/masks.npy",
        index=f"{PREPROCESS}/centers/{{center}}/index.parquet",
    log:
        "logs/preprocess/{center}.log",
    benchmark:
        "results/benchmarks/preprocess/{center}.tsv"
    priority: CNN_PATH_PRIORITY
    conda:
        f"{ENVS}/cohort.yaml"
    resources:
        mem_mb=4000,
    params:
        cfg=cfg_sections("preprocessing"),
        masks_policy=MASKS_POLICY,
    script:
        "../scripts/preprocess_center.py"


rule preprocess_gather:
    input:
        preprocessed_centers,
    output:
        index=f"{PREPROCESS}/index.parquet",
    log:
        "logs/preprocess/gather.log",
    priority: CNN_PATH_PRIORITY
    conda:
        f"{ENVS}/cohort.yaml"
    script:
        "../scripts/preprocess_gather.py"


rule split_patients:
    input:
        manifest=MANIFEST,
        # ancient: splits read the manifest's labels only; a changed image does not move patients
        validation=ancient("results/validation/report.json"),
    output:
        splits="results/splits/splits.json",
    log:
        "logs/splits/split.log",
    priority: CNN_PATH_PRIORITY
    conda:
        f"{ENVS}/cohort.yaml"
    params:
        cfg=cfg_sections("splits"),
    script:
        "../scripts/split_patients.py"


rule mlflow_init:
    input:
        # after the cohort checkpoints, never beside them: when mlflow_init finished in the same scheduler round
        # as validate_cohort, Snakemake's checkpoint update ended the run "3 of 3 steps done" with nothing
        # downstream planned (seen in the e2e test's first run; ancient: a revalidation does not rerun it)
        ancient("results/validation/report.json"),
    output:
        MLFLOW_STATE,
    log:
        "logs/mlflow/init.log",
    priority: CNN_PATH_PRIORITY
    conda:
        f"{ENVS}/cohort.yaml"
    params:
        # only what names the experiment: with the whole config here, any config change made this rule rerun,
        # and Snakemake then planned nothing downstream of it in the same invocation (a changed
        # fusion.k_candidates reran mlflow_init only; tests/test_workflow_e2e.py caught it)
        cfg=cfg_sections("mlflow", "cohort"),
    script:
        "../scripts/mlflow_init.py"


if config["acdc"]["source"]:

    checkpoint import_acdc:
        output:
            manifest=MANIFEST,
        log:
            "logs/cohort/import_acdc.log",
        benchmark:
            "results/benchmarks/cohort/import_acdc.tsv"
        conda:
            f"{ENVS}/cohort.yaml"
        resources:
            mem_mb=2000,
        params:
            cfg=cfg_sections("acdc"),
            source=repo_path(config["acdc"]["source"]),
            external=repo_path(config["acdc"]["external_source"]),
        script:
            "../scripts/cohort_import_acdc.py"

    # ACDC groups the scar proxy leaves out (DCM, HCM) as masks for the segmenter only (issue 22): after the
    # study's import, so that no study patient can also be a masks-only training case
    if config["acdc"]["masks_only_groups"]:

        rule import_acdc_masks_only:
            input:
                manifest=MANIFEST,
            output:
                manifest=f"{config['acdc']['masks_only_path']}/manifest.csv",
            log:
                "logs/cohort/import_acdc_masks_only.log",
            conda:
                f"{ENVS}/cohort.yaml"
            resources:
                mem_mb=2000,
            params:
                cfg=cfg_sections("acdc"),
                source=repo_path(config["acdc"]["source"]),
            script:
                "../scripts/cohort_import_acdc_masks_only.py"
