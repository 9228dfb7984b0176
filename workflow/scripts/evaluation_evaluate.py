from cinescar.evaluation.run import evaluate_job
from cinescar.jobs import inputs, outputs, params, setup_job

setup_job(snakemake)
evaluate_job(inputs(snakemake), outputs(snakemake), params(snakemake))
