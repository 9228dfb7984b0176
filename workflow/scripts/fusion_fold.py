from cinescar.fusion.run import run_fold
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
# The full config goes to MLflow so this run nests under the same parent run as every other stage's.
run_fold(snakemake.input.radiomics, snakemake.input.dl, snakemake.input.index, snakemake.input.splits,
         int(snakemake.wildcards.fold), snakemake.config, snakemake.output.scores, snakemake.output.predictions,
         snakemake.output.model, threads=snakemake.threads)
