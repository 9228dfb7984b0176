from cinescar.baselines.run import run_control
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
run_control(snakemake.params.kind, inp.index, inp.splits, snakemake.config, out.predictions, out.status, out.model,
            features_path=getattr(inp, "features", None))
