from cinescar.baselines.run import run_clinical
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
run_clinical(inp.manifest, inp.index, inp.splits, snakemake.config, out.predictions, out.status, out.model)
