from cinescar.jobs import inputs, outputs, params, setup_job

setup_job(snakemake)

from cinescar.dl.run import tune_job  # noqa: E402  (after logging: Lightning logs at import)

# The job reads the rule's inputs, outputs and params only (dl.threads among them, never the cores granted).
tune_job(inputs(snakemake), outputs(snakemake), params(snakemake))
