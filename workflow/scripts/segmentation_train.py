from cinescar.jobs import setup_job

setup_job(snakemake)

from cinescar.segmentation.run import train_job  # noqa: E402  (after logging: MONAI logs at import)

# The network reads the rule's params only; the whole config reaches MLflow only (the parent run it nests under).
train_job(dict(snakemake.input), dict(snakemake.output), {"cfg": snakemake.params.cfg},
          int(snakemake.wildcards.fold))
