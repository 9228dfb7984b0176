from cinescar.logs import setup_logging
from cinescar.radiomics.extract import extract_chunk

setup_logging(snakemake.log[0])
extract_chunk(snakemake.input.index, snakemake.input.params, int(snakemake.wildcards.chunk),
              int(snakemake.wildcards.n_chunks), snakemake.output.features, snakemake.output.failures,
              processes=snakemake.threads)
