from pathlib import Path

from cinescar.cohort.validate import validate_cohort
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
validate_cohort(Path(snakemake.input.manifest).parent, cfg=snakemake.params.cfg).to_json(
    snakemake.output.validation)
