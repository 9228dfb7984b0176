"""The structure (issue 26): stages in one order with no arrow back up, one job layer per stage, tracking set up
once per job. Read from the code (imports and calls), so a change that breaks the pattern fails here, not in a
review.

Order of the layers, from the inputs up (an import may only point to the same layer or a lower one):
base contracts -> DICOM reading -> cohort -> DICOM import -> preprocessing -> segmentation -> radiomics -> DL
-> fusion -> baselines -> evaluation -> screening -> job set-up -> command line. Preprocessing sits below
segmentation because the segmenter's image field reuses preprocessing's image geometry (`preprocessing.images`);
the workflow runs the segmenter first, and the files, not imports, carry its masks to preprocessing.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO
from test_house import _cycles, _import_graph

SRC = REPO / "src" / "cinescar"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("cinescar", "cinescar.errors", "cinescar.io", "cinescar.config", "cinescar.logs", "cinescar.public",
              "cinescar.versions", "cinescar.models", "cinescar.screening_rule", "cinescar.predictions",
              "cinescar.tracking")),
    ("dicom reading", ("cinescar.dicom", "cinescar.dicom.headers", "cinescar.dicom.stack", "cinescar.dicom.reader",
                       "cinescar.dicom.phases", "cinescar.dicom.exam")),
    ("cohort", ("cinescar.cohort",)),
    ("dicom import", ("cinescar.dicom.importer", "cinescar.dicom.seg")),
    ("preprocessing", ("cinescar.preprocessing",)),
    ("segmentation", ("cinescar.segmentation",)),
    ("radiomics", ("cinescar.radiomics",)),
    ("dl", ("cinescar.dl",)),
    ("fusion", ("cinescar.fusion",)),
    ("baselines", ("cinescar.baselines",)),
    ("evaluation", ("cinescar.evaluation",)),
    ("screening", ("cinescar.screening",)),
    ("job set-up", ("cinescar.jobs",)),
    ("command line", ("cinescar.cli", "cinescar.dicom.cli")),
]

JOB_LAYER = ("cinescar.jobs", "cinescar.screening.publish",
             # the registration half of the bundle job: publish calls it, nothing below does
             "cinescar.screening.pyfunc")
"""Besides every stage's `run.py`: the modules that may set up or use tracking."""


def _layer(module: str) -> int:
    """The layer of a module: the longest listed prefix wins (`cinescar.dicom.importer` over `cinescar.dicom`)."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{module} belongs to no layer of tests/test_structure.py: add it"
    return rank


def _is_job_layer(module: str) -> bool:
    return module.endswith(".run") or module in JOB_LAYER or module == "cinescar.tracking"


def test_no_import_circle_between_modules_or_stages():
    graph = _import_graph()
    assert _cycles(graph) == []
    stages: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        a = LAYERS[_layer(mod)][0]
        stages.setdefault(a, set()).update(LAYERS[_layer(d)][0] for d in deps if LAYERS[_layer(d)][0] != a)
    for stage in LAYERS:
        stages.setdefault(stage[0], set())
    assert _cycles(stages) == [], "stages import each other in a circle"


def test_no_import_points_from_a_lower_stage_to_a_higher_one():
    graph = _import_graph()
    up = sorted(f"{m} ({LAYERS[_layer(m)][0]}) -> {d} ({LAYERS[_layer(d)][0]})"
                for m, deps in graph.items() for d in deps if _layer(d) > _layer(m))
    assert up == [], "imports that run back up the stages: move what both need into the lower one\n" + "\n".join(up)


def test_only_the_job_layer_imports_tracking():
    graph = _import_graph()
    users = sorted(m for m, deps in graph.items() if "cinescar.tracking" in deps and not _is_job_layer(m))
    assert users == [], (f"{users} import cinescar.tracking below the job layer: hand what to log to the job "
                         "layer (a stage's run.py), which opens the run")


def _calls(path: Path, names: set[str]) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
            and ((isinstance(n.func, ast.Attribute) and n.func.attr in names)
                 or (isinstance(n.func, ast.Name) and n.func.id in names))]


def test_only_the_job_layer_starts_mlflow_runs():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if _is_job_layer(module):
            continue
        found += [f"{module}:{line}" for line in _calls(path, {"start_run", "open_run", "create_run"})]
    assert found == [], f"MLflow runs started below the job layer: {found}"


def test_every_script_sets_up_its_job_from_its_rule_and_passes_no_whole_config():
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert scripts
    bad = [s.name for s in scripts if "snakemake.config" in s.read_text(encoding="utf-8")]
    assert bad == [], f"{bad} hand the whole config to the library; pass the rule's params (cinescar.jobs)"
    no_setup = [s.name for s in scripts if not ({"setup_job", "init_tracking_job"} & {
        n.id for n in ast.walk(ast.parse(s.read_text(encoding="utf-8"))) if isinstance(n, ast.Name)})]
    assert no_setup == [], f"{no_setup} do not set up logging and tracking with cinescar.jobs"


def test_the_schema_and_the_workflow_catalog_keep_the_top_level_layout():
    """The Snakefile and envs/ stay at the top level (the design asks for them); the catalog file says so."""
    import yaml

    text = (REPO / ".snakemake-workflow-catalog.yml").read_text(encoding="utf-8")
    assert yaml.safe_load(text)["usage"]  # still the catalog's format
    assert (REPO / "Snakefile").is_file() and (REPO / "envs").is_dir() and not (REPO / "workflow" / "Snakefile").exists()
    assert "the Snakefile and envs/ stay at the top level" in text


OUTPUT_SUFFIXES = (".csv", ".json", ".parquet", ".png", ".html", ".pt", ".npy", ".nii.gz", ".tsv", ".dcm", ".skops")
NAMED_FORMATS = {
    # module: why it may join a file name onto a folder (each is the one home of a format, not a workflow output)
    "cinescar.cohort.acdc": "writes a cohort folder (the cohort contract: images/, masks/, manifest.csv)",
    "cinescar.cohort.synth": "writes a cohort folder (the cohort contract) and its truth/ files",
    "cinescar.cohort.figure": "reads a cohort folder (manifest.csv, truth/)",
    "cinescar.config": "the shipped default config file",
    "cinescar.preprocessing.store": "the preprocessed store's format (STORE_FILES) and the cohort's manifest.csv",
    "cinescar.screening.screen": "reads an exam of a cohort folder (manifest.csv)",
    "cinescar.screening.batch": "the CLI's own output folder (one result per exam) and cohort folders it reads",
    "cinescar.screening.dicom_exam": "the CLI's DICOM outputs (SEG and result objects) in its --out folder",
    "cinescar.tracking": "the tracking state and offline records (the job layer's own files)",
}


def _joined_names(path: Path) -> list[tuple[int, str]]:
    """`folder / "name.csv"` (or an f-string name) in a module: a path made up from a name the module knows."""
    found = []
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            r = n.right
            name = (r.value if isinstance(r, ast.Constant) and isinstance(r.value, str) else
                    "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in r.values)
                    if isinstance(r, ast.JoinedStr) else None)  # fmt: skip
            if name and name.endswith(OUTPUT_SUFFIXES):
                found.append((n.lineno, name))
    return found


def test_below_the_job_layer_no_module_opens_an_output_by_a_name_it_made_up():
    """Issue 26: output names live in the rules; a library module gets the paths its job was given. The few
    modules that are the one home of a file format (the cohort folder, the preprocessed store, the CLI's own
    output folders, the tracking state) are listed with the reason."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if _is_job_layer(module) or module in NAMED_FORMATS:
            continue
        found += [f"{module}:{line} {name}" for line, name in _joined_names(path)]
    assert found == [], f"library modules that make up output paths (take them from the rule instead): {found}"


def test_the_preprocessed_store_names_are_the_ones_the_rule_declares():
    from cinescar.preprocessing.store import STORE_FILES

    rule = (REPO / "workflow" / "rules" / "cohort.smk").read_text(encoding="utf-8").split("rule preprocess_center:")[1]
    outputs = rule.split("output:")[1].split("log:")[0]
    for key, name in STORE_FILES.items():
        assert f'{key}=f"{{PREPROCESS}}/centers/{{{{center}}}}/{name}"' in outputs, (key, name)
