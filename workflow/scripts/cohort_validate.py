from pathlib import Path

from cinescar.cohort.validate import validate_cohort
from cinescar.jobs import setup_job

setup_job(snakemake)
validate_cohort(Path(snakemake.input.manifest).parent, cfg=snakemake.params.cfg).to_json(
    snakemake.output.validation)
