from cinescar.jobs import setup_job
from cinescar.radiomics.extract import extract_chunk

setup_job(snakemake)
extract_chunk(snakemake.input.index, snakemake.input.params, int(snakemake.wildcards.chunk),
              int(snakemake.wildcards.n_chunks), snakemake.output.features, snakemake.output.failures,
              processes=snakemake.threads)
