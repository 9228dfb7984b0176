from cinescar.baselines.run import run_combined
from cinescar.jobs import setup_job

setup_job(snakemake)
# the fit reads the rule's params only (its config sections); tracking was set up from the rule above
inp, out = snakemake.input, snakemake.output
run_combined(snakemake.wildcards.image_model, inp.image, inp.manifest, inp.index, inp.splits, snakemake.params.cfg,
             out.predictions, out.status, out.model)
