from cinescar.cohort.acdc import import_acdc
from cinescar.logs import setup_logging

setup_logging(snakemake.log[0])
acdc = snakemake.params.cfg["acdc"]
options = {"label_map": acdc["label_map"], "center": acdc["center"], "vendor": acdc["vendor"]}
import_acdc(snakemake.params.source, snakemake.params.out, cohort="internal", **options)
if snakemake.params.external:
    import_acdc(snakemake.params.external, snakemake.params.out, cohort="external", append=True, **options)
