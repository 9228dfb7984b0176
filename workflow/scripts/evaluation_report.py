from pathlib import Path

from cinescar.evaluation.report import build_and_log_report
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
# the folders come from the rule's own files: evaluation outputs beside metrics.csv, Grad-CAM folds above done.json
build_and_log_report(Path(snakemake.input.metrics).parent, snakemake.output.html, snakemake.config,
                     gradcam_dir=Path(snakemake.input.gradcam[0]).parents[1], cohort_figure=snakemake.params.cohort_figure or None,
                     index=snakemake.input.index,
                     segmentation_dir=Path(snakemake.input.segmentation[0]).parent if snakemake.input.get("segmentation") else None,
                     deployment=({"comparison": snakemake.input.deployment[0], "icc": snakemake.input.deployment[2]}
                                 if snakemake.input.get("deployment") else None))
