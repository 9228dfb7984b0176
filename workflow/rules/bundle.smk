# Model bundle (docs/screening.md): the final models (per model the fold chosen on the internal test), their
# validation cut-offs, preprocessing settings, the pyradiomics parameter file and the CNN weights frozen into
# one versioned, hash-checked folder for `cinescar screen`, and registered in MLflow as a pyfunc model.
# Every fold's model files are inputs: which fold each model uses is only known from final_models.json, and
# the evaluation needs every fold anyway, so this adds no job.

BUNDLE = "results/bundle"


# With the segmenter (issue 22), when the study trains one: every cross-fitted network and their held-out Dice.
rule bundle:
    input:
        **(
            {
                "segmentation_models": expand(
                    "results/segmentation/fold{fold}/model.pt", fold=SEG_FOLDS
                ),
                "segmentation_metas": expand(
                    "results/segmentation/fold{fold}/model.json", fold=SEG_FOLDS
                ),
                "segmentation_overlap": "results/segmentation/overlap.csv",
            }
            if config["segmentation"]["enabled"]
            else {}
        ),
        final_models="results/evaluation/final_models.json",
        metrics="results/evaluation/metrics.csv",
        radiomics_models=expand("results/radiomics/fold{fold}/model.joblib", fold=FOLDS),
        radiomics_chosen_k="results/radiomics/chosen_k.json",
        dl_models=expand("results/dl/fold{fold}/model.ckpt", fold=FOLDS),
        dl_hparams=expand("results/dl/fold{fold}/hparams.json", fold=FOLDS),
        fusion_models=expand("results/fusion/fold{fold}/model.joblib", fold=FOLDS),
        fusion_choice="results/fusion/choice.json",
        radiomics_params=repo_path(config["radiomics"]["params"]),
        index=f"{PREPROCESS}/index.parquet",
        splits="results/splits/splits.json",
        manifest=MANIFEST,
        mlflow=MLFLOW_READY,
    output:
        bundle=report(
            f"{BUNDLE}/bundle.json",
            caption="../report/bundle.rst",
            category="Model bundle",
        ),
    log:
        "logs/bundle/bundle.log",
    benchmark:
        "results/benchmarks/bundle/bundle.tsv"
    conda:
        f"{ENVS}/evaluation.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cfg=cfg_sections(
            "preprocessing",
            "radiomics",
            "dl",
            "fusion",
            "screening",
            "bundle",
            "mlflow",
            "segmentation",
        ),
    script:
        "../scripts/bundle_build.py"
