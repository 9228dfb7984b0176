# Shared by every rule file -- config validation, constants and input functions.
import json
from pathlib import Path

from cinescar.cohort.contract import slugify
from cinescar.config import validate_config
from cinescar.errors import CinescarError

try:
    validate_config(config)
except CinescarError as exc:
    raise ValueError(str(exc)) from None

COHORT = config["cohort"]["path"]
if config["cohort"]["synthetic"] and config["acdc"]["source"]:
    raise ValueError(
        "invalid configuration: cohort.synthetic and acdc.source both set; choose one source"
    )
MANIFEST = f"{COHORT}/manifest.csv"
FOLDS = list(range(int(config["splits"]["folds"])))
MLFLOW_STATE = "results/mlflow/tracking.json"
# Rules that log take the tracking set-up as an input so the SQLite store exists before any of them
# starts (two processes creating a fresh store at once crash one). ancient(): pointing MLflow elsewhere
# re-initialises tracking but never reruns the study itself.
MLFLOW_READY = ancient(MLFLOW_STATE)
PREPROCESS = "results/preprocess"
# Scheduling only (no number changes): the CNN path -- preprocessing of every centre, the splits, the tracking
# set-up, DL tuning, the five DL folds (~40 % of the run's CPU) -- does not wait for radiomics extraction, so
# its rules run first and the many short extraction chunks fill the other core and the gaps. Without it Snakemake ran every extraction
# chunk first and the DL folds in three rounds at the end, the last alone on one core (paper-cpu size: DL
# tuning started at 26 of 52 minutes, docs/performance.md section 4). A rule's priority does not pass to the
# rules it depends on, so every rule on that path carries it.
CNN_PATH_PRIORITY = 10


wildcard_constraints:
    center="[a-z0-9-]+",
    fold=r"\d+",


def cfg_sections(*names):
    """The config sections a job depends on, passed as its params so that changing one of them reruns
    exactly the rules that read it (Snakemake's params rerun trigger), and nothing else.
    """
    return {name: config[name] for name in names if name in config} | {
        "seed": config["seed"]
    }


def center_slugs(wildcards=None):
    """Centre slugs of the cohort, known once the validation checkpoint has run."""
    validation = checkpoints.validate_cohort.get().output.validation
    return json.loads(Path(validation).read_text())["center_slugs"]


def preprocessed_centers(wildcards=None):
    return expand(
        f"{PREPROCESS}/centers/{{center}}/index.parquet", center=center_slugs()
    )


def _manifest_ready():
    """When a rule writes the manifest (synthetic cohort, ACDC import), its files are known once it has run;
    both are checkpoints so that the input lists below are the same on every invocation.
    """
    if config["cohort"]["synthetic"]:
        checkpoints.synth_cohort.get()
    elif config["acdc"]["source"]:
        checkpoints.import_acdc.get()


def cohort_files(wildcards=None):
    """Every file the manifest names: editing an image or a mask reruns validation."""
    from cinescar.cohort.contract import manifest_files

    _manifest_ready()
    return manifest_files(COHORT)


def center_files(wildcards):
    """The files of one centre's patients: editing one reruns that centre's preprocessing only."""
    from cinescar.cohort.contract import manifest_files

    _manifest_ready()
    return manifest_files(COHORT, wildcards.center)


# segmentation.masks (issue 22): which masks the scar models use; without the segmenter, every mask is manual
MASKS_POLICY = (
    config["segmentation"]["masks"] if config["segmentation"]["enabled"] else "manual"
)
# The deployment case (docs/segmentation.md): models trained on manual masks scored on predicted ones; not
# when the models themselves train on predicted masks
DEPLOYMENT = (
    config["segmentation"]["enabled"]
    and config["segmentation"]["deployment"]
    and MASKS_POLICY != "predicted"
)


def predicted_masks_of(wildcards):
    """{"predicted": the centre's segmentation table} when a stack of this centre uses a predicted mask, else {}:
    preprocessing then waits for the segmenter only where it needs it (with every mask manual, the CNN path
    does not wait for segmentation training)."""
    from cinescar.cohort.contract import PHASES, has_path, mask_source, read_manifest

    if MASKS_POLICY == "manual":
        return {}
    _manifest_ready()
    table = read_manifest(COHORT)
    rows = table[table["center"].astype(str).map(slugify) == wildcards.center]
    needs = any(
        mask_source(MASKS_POLICY, has_path(r[m])) == "predicted"
        for _, r in rows.iterrows()
        for _, m in PHASES.values()
    )
    return (
        {"predicted": f"results/segmentation/centers/{wildcards.center}.parquet"}
        if needs
        else {}
    )


RADIOMICS = "results/radiomics"


def extraction_chunk_counts():
    """{centre slug: number of chunks}, from the validation report (known before preprocessing)."""
    from cinescar.radiomics.extract import extraction_chunks

    validation = checkpoints.validate_cohort.get().output.validation
    return extraction_chunks(
        MANIFEST, validation, int(config["radiomics"]["extract_chunk_images"])
    )


def extraction_chunk_files(ext):
    counts = extraction_chunk_counts()
    return [
        f"{RADIOMICS}/chunks/{slug}/{chunk}-of-{n}.{ext}"
        for slug in center_slugs()
        for n in [counts[slug]]
        for chunk in range(n)
    ]


def preprocessed_arrays(wildcards=None):
    return expand(
        f"{PREPROCESS}/centers/{{center}}/{{arr}}.npy",
        center=center_slugs(),
        arr=["images", "masks"],
    )


# The repository's root, from this file's own location: `workflow.basedir` is the *using* workflow's
# folder when cinescar is used as a Snakemake module (`module cinescar: snakefile: ...`).
REPO = str(Path(str(workflow.current_basedir)).resolve().parents[1])

# The library is importable in every job, also inside the per-group conda environments
# (`--sw-deployment-method conda`), which hold only third-party dependencies.
import os

os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (f"{REPO}/src", os.environ.get("PYTHONPATH", "")) if p
    )
)
ENVS = f"{REPO}/envs"


def repo_path(path):
    """A config path as given if it exists from the working directory, else relative to the workflow
    (so `snakemake -d elsewhere` still finds the shipped config/radiomics.yaml)."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    shipped = f"{REPO}/{path}"
    return shipped if os.path.exists(shipped) else path


# Gradient boosting's OpenMP threads spin while waiting for a busy core; passive waiting keeps
# parallel jobs on few cores from slowing each other down (measured 1.0 s vs 3-37 s per fit).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
