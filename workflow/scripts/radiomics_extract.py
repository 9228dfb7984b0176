from cinescar.logs import setup_logging
from cinescar.radiomics.extract import extract_center

setup_logging(snakemake.log[0])
extract_center(snakemake.input.index, snakemake.input.params, snakemake.output.features, snakemake.output.failures,
               processes=snakemake.threads)
