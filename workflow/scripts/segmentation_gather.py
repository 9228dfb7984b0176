from cinescar.logs import setup_logging
from cinescar.segmentation.run import gather_job

setup_logging(snakemake.log[0])
gather_job({"tables": list(snakemake.input.tables)}, dict(snakemake.output),
           {"cfg": snakemake.params.cfg, "run_cfg": snakemake.config})
