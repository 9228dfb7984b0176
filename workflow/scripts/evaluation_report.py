from cinescar.evaluation.report import build_and_log_report
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
build_and_log_report(snakemake.params.evaluation_dir, snakemake.output.html, snakemake.config,
                     gradcam_dir=snakemake.params.gradcam_dir, cohort_figure=snakemake.params.cohort_figure or None)
