from cinescar.logs import setup_logging
from cinescar.tracking import init_tracking

setup_logging(snakemake.log[0])
init_tracking(snakemake.params.cfg, snakemake.output[0])
