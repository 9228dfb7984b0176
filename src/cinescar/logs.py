"""Logging set-up shared by the CLI and the workflow scripts.

Snakemake gives every job a `log:` file; scripts call `setup_logging(snakemake.log[0])` so that what the
library logs, and any CinescarError, lands there rather than in a terminal nobody reads on a cluster.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    # ITK warns about "unexpected scales in sform" on real headers; images read correctly.
    try:
        import SimpleITK as sitk

        sitk.ProcessObject_SetGlobalWarningDisplay(False)
    except ImportError:  # pragma: no cover
        pass
    for noisy in ("lightning", "lightning.pytorch", "pytorch_lightning", "alembic", "radiomics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
