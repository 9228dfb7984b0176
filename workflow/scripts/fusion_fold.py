from cinescar.fusion.run import run_fold
from cinescar.jobs import setup_job

setup_job(snakemake)
# The fit reads the rule's params (its config sections); the whole config goes to MLflow only, so that this
# run nests under the same parent run as every other stage's.
cfg = snakemake.params.cfg
run_fold(snakemake.input.radiomics, snakemake.input.dl, snakemake.input.index, snakemake.input.splits,
         int(snakemake.wildcards.fold), cfg, snakemake.output.scores, snakemake.output.predictions,
         snakemake.output.model, threads=int(cfg["fusion"]["threads"]))
# Numeric threads come from the config, not from the cores Snakemake grants (`--cores 1` scales `threads:`
# down): the thread count changes floating-point summation order, and the same config must give the same
# numbers whatever --cores says.
