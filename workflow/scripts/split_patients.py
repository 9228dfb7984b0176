from pathlib import Path

from cinescar.cohort.contract import read_manifest
from cinescar.jobs import setup_job
from cinescar.cohort.splits import make_splits, save_splits

setup_job(snakemake)
cfg = snakemake.params.cfg
splits = make_splits(read_manifest(Path(snakemake.input.manifest).parent), float(cfg["splits"]["test_fraction"]),
                     int(cfg["splits"]["folds"]), int(cfg["seed"]))
save_splits(splits, snakemake.output.splits)
