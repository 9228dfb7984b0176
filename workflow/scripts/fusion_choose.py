from cinescar.fusion.run import choose
from cinescar.jobs import setup_job

setup_job(snakemake)
# The choice reads the rule's params (the fusion section); the whole config goes to MLflow only.
choose(list(snakemake.input.scores), list(snakemake.input.predictions), snakemake.params.cfg,
       snakemake.output.choice, snakemake.output.classifiers, snakemake.output.predictions,
       snakemake.output.selected)
