from cinescar.fusion.run import run_fold
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
# The full config goes to MLflow so this run nests under the same parent run as every other stage's.
run_fold(snakemake.input.radiomics, snakemake.input.dl, snakemake.input.index, snakemake.input.splits,
         int(snakemake.wildcards.fold), snakemake.config, snakemake.output.scores, snakemake.output.predictions,
         snakemake.output.model, threads=int(snakemake.config["fusion"]["threads"]))
# Numeric threads come from the config, not from the cores Snakemake grants (`--cores 1` scales `threads:`
# down): the thread count changes floating-point summation order, and the same config must give the same
# numbers whatever --cores says.
