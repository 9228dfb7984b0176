from cinescar.jobs import setup_job
from cinescar.segmentation.run import gather_job

setup_job(snakemake)
gather_job({"tables": list(snakemake.input.tables)}, dict(snakemake.output),
           {"cfg": snakemake.params.cfg})
