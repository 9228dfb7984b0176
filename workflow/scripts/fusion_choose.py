from cinescar.fusion.run import choose
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
choose(list(snakemake.input.scores), list(snakemake.input.predictions), snakemake.config, snakemake.output.choice,
       snakemake.output.classifiers, snakemake.output.predictions, snakemake.output.selected)
