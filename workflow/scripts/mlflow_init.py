from cinescar.jobs import init_tracking_job

# the whole config: the parent run is named by its hash, and every job nests under the parent of its own config
init_tracking_job(snakemake)
