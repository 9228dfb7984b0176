from cinescar.jobs import setup_job
from cinescar.preprocessing.store import gather_index

setup_job(snakemake)
gather_index(list(snakemake.input), snakemake.output.index)
