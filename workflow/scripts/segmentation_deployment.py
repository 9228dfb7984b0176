from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.screening.run import deployment_job  # noqa: E402

deployment_job({"patients": list(snakemake.input.patients), "features": list(snakemake.input.features)},
               dict(snakemake.output), {"cfg": snakemake.params.cfg, "run_cfg": snakemake.config})
