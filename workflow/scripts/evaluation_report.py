from cinescar.evaluation.run import report_job
from cinescar.jobs import inputs, outputs, params, setup_job

setup_job(snakemake)
# the folders come from the rule's own files: evaluation outputs beside metrics.csv, Grad-CAM folds above done.json
report_job(inputs(snakemake), outputs(snakemake), params(snakemake))
