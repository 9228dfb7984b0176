from pathlib import Path

from cinescar.evaluation.study import evaluate_study
from cinescar.logs import setup_logging
from cinescar.models import MODELS

setup_logging(snakemake.log[0])
inp = snakemake.input
evaluate_study({m: getattr(inp, m) for m in MODELS if hasattr(inp, m)}, inp.index, inp.splits, inp.manifest,
               Path(snakemake.output.metrics).parent, snakemake.config,
               selected_features={"radiomics": (inp.radiomics_selected, inp.radiomics_choice),
                                  "fusion": (inp.fusion_selected, inp.fusion_choice)},
               fusion_classifiers=inp.fusion_classifiers, fusion_choice=inp.fusion_choice,
               statuses={Path(p).parent.name: p for p in getattr(inp, "statuses", [])})
