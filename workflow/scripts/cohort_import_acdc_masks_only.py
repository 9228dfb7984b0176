from pathlib import Path

from cinescar.cohort.acdc import import_acdc_masks_only
from cinescar.cohort.contract import read_manifest
from cinescar.jobs import setup_job

setup_job(snakemake)
acdc = snakemake.params.cfg["acdc"]
study = read_manifest(Path(snakemake.input.manifest).parent)["patient_id"].astype(str).tolist()
import_acdc_masks_only(snakemake.params.source, Path(snakemake.output.manifest).parent, acdc["masks_only_groups"],
                       center=acdc["center"], vendor=acdc["vendor"], exclude=study)
