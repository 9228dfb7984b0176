from cinescar.jobs import inputs, outputs, setup_job

setup_job(snakemake)

from cinescar.dl.run import gather_job  # noqa: E402

gather_job(inputs(snakemake), outputs(snakemake))
