from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.screening.run import deployment_center_job  # noqa: E402

deployment_center_job(dict(snakemake.input), dict(snakemake.output), {"cfg": snakemake.params.cfg},
                      snakemake.wildcards.center)
