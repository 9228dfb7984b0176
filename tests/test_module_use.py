"""cinescar used as a Snakemake module from another workflow (what the Snakemake workflow catalog shows its
users): `module cinescar: snakefile: <path>; use rule * from cinescar` must build the whole DAG."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_the_workflow_builds_as_a_snakemake_module(tmp_path):
    (tmp_path / "Snakefile").write_text(f'''configfile: "{REPO / '.test' / 'config.yaml'}"


module cinescar:
    snakefile:
        "{REPO / 'Snakefile'}"
    config:
        config


use rule * from cinescar as cinescar_*
''', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=tmp_path,
                          capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for rule in ("cinescar_synth_cohort", "cinescar_dl_train", "cinescar_evaluate", "cinescar_report",
                 "cinescar_bundle"):
        assert rule in out
    # the module's own files (conda environments, shipped radiomics parameters) are found from its folder
    assert "MissingInputException" not in out
