"""Logging set-up shared by the CLI and the workflow scripts.

Snakemake gives every job a `log:` file; scripts call `setup_logging(snakemake.log[0])` so that what the
library logs, and any CinescarError, lands there rather than in a terminal nobody reads on a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    silence_itk()
    for noisy in ("lightning", "lightning.pytorch", "pytorch_lightning", "alembic", "radiomics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    sys.excepthook = _log_uncaught


def silence_itk(quiet: bool = True) -> bool:
    """Turn ITK's global warning display off (on with `quiet=False`); returns the previous setting.

    The one ITK warning silencer (jobs, the CLI, the ACDC importer): ITK warns about "unexpected scales in
    sform" on real headers although the images read correctly, and writes it past Python's logging.
    """
    try:
        import SimpleITK as sitk
    except ImportError:  # pragma: no cover
        return False
    previous = bool(sitk.ProcessObject_GetGlobalWarningDisplay())
    sitk.ProcessObject_SetGlobalWarningDisplay(not quiet)
    return previous


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """`silence_itk` while the block runs; the previous setting is restored afterwards."""
    previous = silence_itk()
    try:
        yield
    finally:
        silence_itk(not previous)


def _log_uncaught(exc_type, exc, tb) -> None:
    """An error that ends a job is written through logging, so it reaches the job's `log:` file as well as
    stderr (a cluster job's stderr is a file nobody opens). A CinescarError is the user's to fix and prints as
    one line; anything else is a bug and keeps its traceback."""
    from cinescar.errors import CinescarError

    logger = logging.getLogger("cinescar")
    if issubclass(exc_type, CinescarError):
        logger.error("error: %s", exc)
    elif issubclass(exc_type, KeyboardInterrupt):
        logger.error("interrupted")
    else:
        logger.critical("internal error: %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))
    for handler in logging.getLogger().handlers:
        handler.flush()
