# cinescar: scar screening of HCM patients from non-contrast cine MRI (Fahmy et al., JCMR 2022).
# This file only includes the rule files; see docs/architecture.md for the stages and their artifacts.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"


rule all:
    input:
        "results/splits/splits.json",
        f"{PREPROCESS}/index.parquet",
        MLFLOW_READY,
    default_target: True
