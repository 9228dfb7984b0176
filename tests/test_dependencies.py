"""Every third-party import is declared, the install uses the lock file, the pyfunc's requirements are installable."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTION = {"SimpleITK": "simpleitk", "sklearn": "scikit-learn", "yaml": "pyyaml", "radiomics": "pyradiomics-bhklab",
                "pywt": "pywavelets", "PIL": "pillow"}
INSTALLED_BY_MAKEFILE = {"torch"}  # CPU/CUDA chosen explicitly (Makefile, docs/install.md)


def _declared() -> set[str]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    return {re.split(r"[<>=~! \[;]", m, maxsplit=1)[0].lower() for m in re.findall(r'^\s*"([^"]+)"', block, re.M)}


def _imports() -> set[str]:
    """Top-level modules of every absolute import in the package and the workflow scripts (parsed, so a
    docstring line starting with "from the ..." is not an import)."""
    names = set()
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_declared():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    third_party = {n for n in _imports() if n not in stdlib and n != "cinescar"}
    declared = _declared()
    missing = sorted(n for n in third_party
                     if DISTRIBUTION.get(n, n).lower() not in declared and n not in INSTALLED_BY_MAKEFILE)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_install_uses_the_constraints_file():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install .*-c constraints\.txt", makefile)
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins and all(re.match(r"^[A-Za-z0-9_.-]+==[^\s]+$", p) for p in pins), "constraints.txt: NAME==VERSION"
    names = {p.split("==")[0].lower() for p in pins}
    assert {"numpy", "mlflow", "snakemake", "nibabel", "filelock", "joblib", "threadpoolctl"} <= names
    assert "torch" not in names  # would fix CPU vs CUDA; the Makefile chooses
