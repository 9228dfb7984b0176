from cinescar.jobs import setup_job
from cinescar.segmentation.run import crossfit_job

setup_job(snakemake)
crossfit_job(dict(snakemake.input), dict(snakemake.output), {"cfg": snakemake.params.cfg})
