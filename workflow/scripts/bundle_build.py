from cinescar.jobs import setup_job
from cinescar.screening.publish import build_bundle_from_workflow

setup_job(snakemake)
inp = snakemake.input
# The bundle is made from the rule's params (its config sections) and input files; the whole config (set up
# with tracking by setup_job) is only recorded in it as provenance and names the MLflow parent run.
build_bundle_from_workflow(
    snakemake.output.bundle, snakemake.params.cfg,
    final_models=inp.final_models, metrics=inp.metrics, radiomics_models=list(inp.radiomics_models),
    radiomics_chosen_k=inp.radiomics_chosen_k, dl_models=list(inp.dl_models), dl_hparams=list(inp.dl_hparams),
    fusion_models=list(inp.fusion_models), fusion_choice=inp.fusion_choice, radiomics_params=inp.radiomics_params,
    index=inp.index, splits=inp.splits, manifest=inp.manifest,
    segmentation_models=list(inp.get("segmentation_models", [])) or None,
    segmentation_metas=list(inp.get("segmentation_metas", [])) or None,
    segmentation_overlap=inp.get("segmentation_overlap"),
)
