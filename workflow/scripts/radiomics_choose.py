from cinescar.jobs import setup_job
from cinescar.radiomics.run import choose

setup_job(snakemake)
# The choice reads no config section.
choose(list(snakemake.input.scores), list(snakemake.input.predictions), list(snakemake.input.selected),
       snakemake.output.chosen, snakemake.output.predictions, snakemake.output.selected,
       snakemake.output.cv_scores, snakemake.output.recurrence)
