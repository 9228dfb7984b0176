from cinescar.logs import setup_logging
from cinescar.preprocessing.store import gather_index

setup_logging(snakemake.log[0])
gather_index(list(snakemake.input), snakemake.output.index)
