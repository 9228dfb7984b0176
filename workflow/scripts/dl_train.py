from cinescar.jobs import inputs, outputs, params, setup_job

setup_job(snakemake)

from cinescar.dl.run import train_job  # noqa: E402  (after logging: Lightning logs at import)

# The job reads the rule's inputs, outputs and params only (dl.threads among them, never the cores granted).
train_job(inputs(snakemake), outputs(snakemake), params(snakemake), int(snakemake.wildcards.fold))
