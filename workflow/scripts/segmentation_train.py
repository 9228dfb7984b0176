from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.segmentation.run import train_job  # noqa: E402  (after logging: MONAI logs at import)

# The network reads the rule's params only; the whole config reaches MLflow only (the parent run it nests under).
train_job(dict(snakemake.input), dict(snakemake.output), {"cfg": snakemake.params.cfg, "run_cfg": snakemake.config},
          int(snakemake.wildcards.fold))
