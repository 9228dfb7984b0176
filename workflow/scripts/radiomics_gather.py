from cinescar.logs import setup_logging
from cinescar.radiomics.extract import gather_features

setup_logging(snakemake.log[0])
gather_features(list(snakemake.input.features), list(snakemake.input.failures), snakemake.output.features,
                snakemake.output.failures)
