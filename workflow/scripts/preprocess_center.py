from pathlib import Path

from cinescar.logs import setup_logging
from cinescar.preprocessing.store import preprocess_center

setup_logging(snakemake.log[0])
preprocess_center(Path(snakemake.input.manifest).parent, snakemake.wildcards.center, Path(snakemake.output.index).parent,
                  snakemake.params.cfg)
