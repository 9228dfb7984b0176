from pathlib import Path

from cinescar.cohort.synth import generate_cohort
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
syn = snakemake.params.cfg.get("synthetic", {})
generate_cohort(Path(snakemake.params.out), n_internal=int(syn["internal_patients"]),
                n_external=int(syn["external_patients"]), seed=int(snakemake.params.cfg["seed"]),
                **{k: v for k, v in syn.items() if k.startswith("prevalence")})
