# cinescar: scar screening of HCM patients from non-contrast cine MRI (Fahmy et al., JCMR 2022).
# This file only includes the rule files; docs/architecture.md lists the stages and their artifacts.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


# `snakemake --report report.zip`: the key outputs are marked with report() and captioned in workflow/report/.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/radiomics.smk"
include: "workflow/rules/dl.smk"
include: "workflow/rules/fusion.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/bundle.smk"


rule all:
    default_target: True
    input:
        "results/report/report.html",
        "results/bundle/bundle.json",
        *(
            ["results/segmentation/overlap.csv"]
            if config["segmentation"]["enabled"]
            else []
        ),


# The workflow's MLflow parent run spans the workflow (cinescar.tracking.workflow_status): running while it
# runs, finished or failed with it. Not called on dry runs; a tracking problem never fails the workflow.
onstart:
    from cinescar.tracking import workflow_status

    workflow_status(config, MLFLOW_STATE, "RUNNING")


onsuccess:
    from cinescar.tracking import workflow_status

    workflow_status(config, MLFLOW_STATE, "FINISHED")


onerror:
    from cinescar.tracking import workflow_status

    workflow_status(config, MLFLOW_STATE, "FAILED")
