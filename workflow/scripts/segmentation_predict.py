from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])

from cinescar.segmentation.run import predict_job  # noqa: E402

predict_job({**dict(snakemake.input), "models": list(snakemake.input.models), "metas": list(snakemake.input.metas)},
            dict(snakemake.output), {"cfg": snakemake.params.cfg}, snakemake.wildcards.center)
