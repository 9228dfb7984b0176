from pathlib import Path

from cinescar.cohort.acdc import import_acdc
from cinescar.jobs import setup_job

setup_job(snakemake)
acdc = snakemake.params.cfg["acdc"]
options = {"label_map": acdc["label_map"], "center": acdc["center"], "vendor": acdc["vendor"],
           "with_masks": acdc["study_masks"]}
out = Path(snakemake.output.manifest).parent  # the cohort folder is the manifest's
import_acdc(snakemake.params.source, out, cohort="internal", **options)
if snakemake.params.external:
    import_acdc(snakemake.params.external, out, cohort="external", append=True, **options)
