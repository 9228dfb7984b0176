from pathlib import Path

from cinescar.cohort.synth import generate_cohort
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
syn = dict(snakemake.params.cfg["synthetic"])
generate_cohort(Path(snakemake.params.out), n_internal=int(syn.pop("internal_patients")),
                n_external=int(syn.pop("external_patients")), seed=int(snakemake.params.cfg["seed"]), **syn)
