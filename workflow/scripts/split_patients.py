from pathlib import Path

from cinescar.cohort.contract import read_manifest
from cinescar.logs import setup_logging
from cinescar.cohort.splits import make_splits, save_splits

setup_logging(snakemake.log[0])
cfg = snakemake.params.cfg
splits = make_splits(read_manifest(Path(snakemake.input.manifest).parent), float(cfg["splits"]["test_fraction"]),
                     int(cfg["splits"]["folds"]), int(cfg["seed"]))
save_splits(splits, snakemake.output.splits)
