from pathlib import Path

from cinescar.cohort.synth import generate_cohort
from cinescar.jobs import setup_job

setup_job(snakemake)
syn = dict(snakemake.params.cfg["synthetic"])
# the cohort folder is the manifest's (the rule names the file, the library writes beside it)
generate_cohort(Path(snakemake.output.manifest).parent, n_internal=int(syn.pop("internal_patients")),
                n_external=int(syn.pop("external_patients")), seed=int(snakemake.params.cfg["seed"]), **syn)
