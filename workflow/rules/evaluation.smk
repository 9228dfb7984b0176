# Evaluation and the study report (docs/evaluation.md): patient-level screening at a validation cut-off,
# metrics per model/fold/cohort, DeLong tests, the paper's tables, one self-contained HTML report.

EVALUATION = "results/evaluation"


rule evaluate:
    input:
        radiomics="results/radiomics/predictions.parquet",
        dl="results/dl/predictions.parquet",
        fusion="results/fusion/predictions.parquet",
        # baselines and controls (workflow/rules/baselines.smk): predictions + status.json each
        clinical="results/baselines/clinical/predictions.parquet",
        radiomics_clinical="results/baselines/radiomics_clinical/predictions.parquet",
        dl_clinical="results/baselines/dl_clinical/predictions.parquet",
        fusion_clinical="results/baselines/fusion_clinical/predictions.parquet",
        shape_control="results/baselines/shape_control/predictions.parquet",
        slice_control="results/baselines/slice_control/predictions.parquet",
        statuses=expand(
            "results/baselines/{model}/status.json",
            model=[
                "clinical",
                "radiomics_clinical",
                "dl_clinical",
                "fusion_clinical",
                "shape_control",
                "slice_control",
            ],
        ),
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        manifest=MANIFEST,
        radiomics_selected="results/radiomics/selected_features.csv",
        radiomics_choice="results/radiomics/chosen_k.json",
        fusion_selected="results/fusion/selected_features.csv",
        fusion_choice="results/fusion/choice.json",
        fusion_classifiers="results/fusion/classifiers.csv",
        mlflow=MLFLOW_READY,
    output:
        metrics=report(
            f"{EVALUATION}/metrics.csv",
            caption="../report/metrics.rst",
            category="Evaluation",
        ),
        patients=f"{EVALUATION}/patients.csv",
        delong=report(
            f"{EVALUATION}/delong.csv",
            caption="../report/delong.rst",
            category="Evaluation",
        ),
        final_models=f"{EVALUATION}/final_models.json",
        final_metrics=report(
            f"{EVALUATION}/final_metrics.csv",
            caption="../report/final_metrics.rst",
            category="Evaluation",
        ),
        final_patients=f"{EVALUATION}/final_patients.csv",
        operating_points=f"{EVALUATION}/operating_points.csv",
        operating_points_json=f"{EVALUATION}/operating_points.json",
        incremental=f"{EVALUATION}/incremental.csv",
        roc=f"{EVALUATION}/roc.csv",
        table1=report(
            f"{EVALUATION}/table1.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        table2=report(
            f"{EVALUATION}/table2.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        table3=report(
            f"{EVALUATION}/table3.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        table4=report(
            f"{EVALUATION}/table4.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        table4_folds=f"{EVALUATION}/table4_folds.csv",
        table_s1=f"{EVALUATION}/table_s1.csv",
        table_s2=f"{EVALUATION}/table_s2.csv",
        table_s3=f"{EVALUATION}/table_s3.csv",
        summary=f"{EVALUATION}/summary.json",
        # evidence (issue 12b, cinescar.evaluation.evidence): intervals, calibration, utility, subgroups; every
        # file the job writes is declared here (the job writes each under its name: the names live here only)
        evidence=multiext(
            f"{EVALUATION}/",
            "metrics_ci.csv",
            "auc_differences.csv",
            "calibration.csv",
            "reliability.csv",
            "calibration_curve.csv",
            "recalibration.csv",
            "decision_curve.csv",
            "utility.csv",
            "subgroups.csv",
            "sample_size.csv",
            "missing_values.csv",
            "images_vs_score.csv",
            "instability.csv",
            "instability_points.csv",
            "cutoff_uncertainty.csv",
            "flow.csv",
            "evidence.json",
        ),
    log:
        "logs/evaluation/evaluate.log",
    benchmark:
        "results/benchmarks/evaluation/evaluate.tsv"
    conda:
        f"{ENVS}/evaluation.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("screening", "evaluation", "clinical"),
    script:
        "../scripts/evaluation_evaluate.py"


rule report:
    input:
        metrics=f"{EVALUATION}/metrics.csv",
        delong=f"{EVALUATION}/delong.csv",
        final_models=f"{EVALUATION}/final_models.json",
        final_metrics=f"{EVALUATION}/final_metrics.csv",
        operating_points=f"{EVALUATION}/operating_points.csv",
        roc=f"{EVALUATION}/roc.csv",
        summary=f"{EVALUATION}/summary.json",
        evidence=rules.evaluate.output.evidence,
        tables=expand(
            f"{EVALUATION}/{{t}}.csv",
            t=[
                "table1",
                "table2",
                "table3",
                "table4",
                "table4_folds",
                "table_s1",
                "table_s2",
                "table_s3",
            ],
        ),
        gradcam=expand("results/dl/gradcam/fold{fold}/done.json", fold=FOLDS),
        mlflow=MLFLOW_READY,
        index=f"{PREPROCESS}/index.parquet",
        segmentation=(
            expand("results/segmentation/{t}.csv", t=["overlap", "agreement", "qc"])
            if config["segmentation"]["enabled"]
            else []
        ),
        deployment=(
            expand(
                "results/segmentation/{t}.csv",
                t=["deployment", "deployment_patients", "feature_icc"],
            )
            if DEPLOYMENT
            else []
        ),
    output:
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Study report",
        ),
        versions="results/report/versions.json",
    log:
        "logs/evaluation/report.log",
    conda:
        f"{ENVS}/evaluation.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections("evaluation"),
        # optional: embedded only if the file exists (not an input, so a missing figure never blocks the report)
        cohort_figure=repo_path(config["evaluation"]["cohort_figure"]),
    script:
        "../scripts/evaluation_report.py"
