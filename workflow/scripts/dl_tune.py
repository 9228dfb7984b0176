from pathlib import Path

from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.dl.tune import tune_from_files  # noqa: E402  (after logging: Lightning logs at import)

# The store's root is the folder of the gathered index (results/preprocess).
tune_from_files(snakemake.input.index, snakemake.input.splits, Path(snakemake.input.index).parent,
                dict(snakemake.config), snakemake.output.params, threads=int(snakemake.config["dl"]["threads"]))
# Numeric threads come from the config, not from the cores Snakemake grants (`--cores 1` scales `threads:`
# down): the thread count changes floating-point summation order, and the same config must give the same
# numbers whatever --cores says.
