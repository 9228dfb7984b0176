from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.dl.train import gather_predictions  # noqa: E402

gather_predictions(list(snakemake.input), snakemake.output.predictions, snakemake.output.spread)
