from cinescar.logs import setup_logging
from cinescar.tracking import init_tracking

setup_logging(snakemake.log[0])
# the whole config: the parent run is named by its hash, and every job nests under the parent of its own config
init_tracking(snakemake.config, snakemake.output[0])
