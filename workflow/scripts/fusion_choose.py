from cinescar.fusion.run import choose
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
# The choice reads the rule's params (the fusion section); the whole config goes to MLflow only.
choose(list(snakemake.input.scores), list(snakemake.input.predictions), snakemake.params.cfg,
       snakemake.output.choice, snakemake.output.classifiers, snakemake.output.predictions,
       snakemake.output.selected, run_cfg=snakemake.config)
