from pathlib import Path

from cinescar.jobs import setup_job
from cinescar.preprocessing.store import preprocess_center

setup_job(snakemake)
# predicted masks are an input only where segmentation.masks asks for them (common.smk: predicted_masks_of)
predicted = snakemake.input.get("predicted")
preprocess_center(Path(snakemake.input.manifest).parent, snakemake.wildcards.center, Path(snakemake.output.index).parent,
                  snakemake.params.cfg, masks_policy=snakemake.params.masks_policy,
                  predicted_masks=str(Path(predicted).parent.parent / "masks" / snakemake.wildcards.center)
                  if predicted else None)
