"""The workflow passes `snakemake --lint` and `snakefmt --check`, the two checks Snakemake users (and the
Snakemake workflow catalog) expect of a workflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

# Lints not fixed yet, each with the rule it is in. Remove an entry when its rule is fixed; a new lint fails.
KNOWN_LINTS: set[tuple[str, str]] = set()


def _lints(text: str) -> set[tuple[str, str]]:
    """(where, title) of every lint in `snakemake --lint`'s text output."""
    found, where = set(), None
    for line in text.splitlines():
        head = re.match(r"^Lints for (rule \w+|snakefile \S+)", line)
        if head:
            where = head.group(1).split(" (")[0]
            if where.startswith("snakefile "):
                where = "snakefile " + Path(where.split(" ", 1)[1].rstrip(":")).name
            continue
        item = re.match(r"^    \* (.+?):?$", line)
        if item and where:
            found.add((where, item.group(1).rstrip(".:")))
    return found


def test_snakemake_lint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "Snakefile"), "-d",
                           str(tmp_path), "--configfile", str(REPO / ".test" / "config.yaml")],
                          capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    text = proc.stdout + proc.stderr
    assert "Lints for" in text or proc.returncode == 0, text[-3000:]
    assert _lints(text) - KNOWN_LINTS == set(), text[-4000:]


def test_snakefmt_check():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    proc = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/"], cwd=REPO, capture_output=True,
                          encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
