from pathlib import Path

from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.dl.train import train_fold_from_files  # noqa: E402  (after logging: Lightning logs at import)

# Training reads the rule's params (its config sections); the whole config goes to MLflow only, so that this
# run nests under the same parent run as every other stage's. The store's root is the folder of the gathered
# index (results/preprocess).
cfg = snakemake.params.cfg
train_fold_from_files(snakemake.input.index, snakemake.input.splits, Path(snakemake.input.index).parent,
                      snakemake.input.params, cfg, int(snakemake.wildcards.fold),
                      Path(snakemake.output.model).parent, Path(snakemake.output.gradcam).parent,
                      threads=int(cfg["dl"]["threads"]), run_cfg=snakemake.config)
# Numeric threads come from the config, not from the cores Snakemake grants (`--cores 1` scales `threads:`
# down): the thread count changes floating-point summation order, and the same config must give the same
# numbers whatever --cores says.
