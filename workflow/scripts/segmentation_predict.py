from cinescar.jobs import setup_job

setup_job(snakemake)

from cinescar.segmentation.run import predict_job  # noqa: E402

predict_job({**dict(snakemake.input), "models": list(snakemake.input.models), "metas": list(snakemake.input.metas)},
            dict(snakemake.output), {"cfg": snakemake.params.cfg}, snakemake.wildcards.center)
