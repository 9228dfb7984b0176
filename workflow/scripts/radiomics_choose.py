from cinescar.logs import setup_logging
from cinescar.radiomics.run import choose

setup_logging(snakemake.log[0])
choose(list(snakemake.input.scores), list(snakemake.input.predictions), list(snakemake.input.selected),
       snakemake.config, snakemake.output.chosen, snakemake.output.predictions, snakemake.output.selected,
       snakemake.output.cv_scores, snakemake.output.recurrence)
