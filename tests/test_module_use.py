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


def test_snakemake_report_builds_on_the_tiny_run(killed_then_resumed):
    """`snakemake --report report.zip` on the finished .test run: the outputs marked with report() are in it,
    each with its caption (workflow/report/*.rst)."""
    import zipfile

    from workflow_runs import snakemake

    work = killed_then_resumed[0]
    out = work / "report.zip"
    proc = snakemake(work, "--report", str(out))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    names = zipfile.ZipFile(out).namelist()
    assert any(n.endswith("report.html") for n in names)
    for stem in ("report.html", "metrics.csv", "final_metrics.csv", "delong.csv", "table1.csv", "bundle.json"):
        assert any(n.endswith(stem) for n in names), (stem, names[:40])
