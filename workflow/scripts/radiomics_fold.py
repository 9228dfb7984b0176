from cinescar.jobs import setup_job
from cinescar.radiomics.run import run_fold

setup_job(snakemake)
# The fit reads the rule's params (its config sections); the whole config goes to MLflow only, so that this
# run nests under the same parent run as every other stage's.
run_fold(snakemake.input.features, snakemake.input.index, snakemake.input.splits, int(snakemake.wildcards.fold),
         snakemake.params.cfg, snakemake.output.scores, snakemake.output.predictions, snakemake.output.model,
         snakemake.output.selected)
