"""The `bundle` rule: build the bundle, then register it in MLflow as a pyfunc model (never fatal).

The one module that imports both the bundle (`cinescar.screening.bundle`) and its MLflow registration
(`cinescar.screening.pyfunc`), so that neither imports the other.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cinescar.errors import CinescarError
from cinescar.screening.bundle import BUNDLE_JSON, build_bundle, bundle_settings

log = logging.getLogger(__name__)


def build_bundle_from_workflow(out_json: str | Path, cfg: dict, *, run_cfg: dict | None = None,
                               **inputs: Any) -> Path:
    """Build the bundle next to `out_json` (which must be its bundle.json), then register it unless
    `bundle.register_model` is false; registration problems are warnings, the bundle folder is the product.

    `cfg`: the sections the bundle is made from (the rule's params); `run_cfg`: the workflow's whole config,
    recorded in the bundle as its provenance and naming the MLflow parent run (default `cfg`)."""
    out_json = Path(out_json)
    if out_json.name != BUNDLE_JSON:
        raise CinescarError(f"the bundle's output must be a {BUNDLE_JSON}, got {out_json}")
    path = build_bundle(out_json.parent, cfg=cfg, run_cfg=run_cfg, **inputs)
    if bundle_settings(cfg)["register_model"]:
        from cinescar.screening.pyfunc import register_bundle

        register_bundle(out_json.parent, cfg, run_cfg=run_cfg)
    else:
        log.info("bundle.register_model is false: the bundle is not registered in MLflow")
    return path
