"""Versions of the software that produced a result, recorded in the report, the bundle and MLflow.

One list for every place that records provenance, so the report and the bundle cannot disagree about what
they name.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ("cinescar", "numpy", "scipy", "pandas", "scikit-learn", "joblib", "skops", "pyradiomics-bhklab",
            "pyradiomics", "PyWavelets", "SimpleITK", "torch", "lightning", "monai", "optuna", "mlflow", "snakemake",
            "matplotlib")  # fmt: skip


def package_versions() -> dict[str, str]:
    """Python, platform and the installed version of each package in PACKAGES (absent ones left out)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
