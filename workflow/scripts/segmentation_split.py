from cinescar.logs import setup_logging
from cinescar.segmentation.run import crossfit_job

setup_logging(snakemake.log[0])
crossfit_job(dict(snakemake.input), dict(snakemake.output), {"cfg": snakemake.params.cfg})
