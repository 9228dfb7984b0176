from cinescar.baselines.run import run_combined
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
run_combined(snakemake.wildcards.image_model, inp.image, inp.manifest, inp.index, inp.splits, snakemake.config,
             out.predictions, out.status, out.model)
