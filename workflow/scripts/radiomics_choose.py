from cinescar.logs import setup_logging
from cinescar.radiomics.run import choose

setup_logging(snakemake.log[0])
# The choice reads no config section; the whole config goes to MLflow only (the parent run to nest under).
choose(list(snakemake.input.scores), list(snakemake.input.predictions), list(snakemake.input.selected),
       snakemake.config, snakemake.output.chosen, snakemake.output.predictions, snakemake.output.selected,
       snakemake.output.cv_scores, snakemake.output.recurrence)
