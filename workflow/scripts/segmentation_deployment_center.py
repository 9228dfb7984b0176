from cinescar.jobs import inputs, outputs, params, setup_job

setup_job(snakemake)

from cinescar.screening.run import deployment_center_job  # noqa: E402

deployment_center_job(inputs(snakemake), outputs(snakemake), params(snakemake), snakemake.wildcards.center)
