from cinescar.jobs import setup_job
from cinescar.radiomics.extract import gather_features

setup_job(snakemake)
gather_features(list(snakemake.input.features), list(snakemake.input.failures), snakemake.output.features,
                snakemake.output.failures)
