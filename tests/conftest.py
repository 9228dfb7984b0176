"""Shared fixtures: a tiny cohort in the contract, written in well under a second."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]


def ring_stack(n_slices: int, size: int, rng: np.random.Generator, scar: bool, radius: float = 14.0,
               thickness: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """A short-axis-like stack: bright blood disc, grey myocardial ring, noisy background."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    img = np.zeros((n_slices, size, size), np.float32)
    msk = np.zeros((n_slices, size, size), np.uint8)
    for z in range(n_slices):
        rad = radius * (1 - 0.04 * abs(z - n_slices / 2))
        ring = (r >= rad) & (r < rad + thickness)
        blood = r < rad
        sl = 100 + 20 * rng.standard_normal((size, size))
        sl[blood] += 300
        sl[ring] += 50 + (40 * rng.standard_normal(ring.sum()) if scar else 0)
        img[z] = sl
        msk[z] = ring
    return np.clip(img, 0, None).astype(np.int16), msk


def write_volume(arr: np.ndarray, path: Path, spacing=(1.2, 1.2, 8.0)) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def make_cohort(root: Path, n_internal: int = 14, n_external: int = 4, seed: int = 0, size: int = 48,
                n_slices: int = 8) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_internal + n_external):
        pid = f"T{i:03d}"
        external = i >= n_internal
        lge = int(i % 2 == 1)
        row = {"patient_id": pid, "center": "Ext" if external else ("Centre A" if i % 3 else "Centre B"),
               "vendor": "Philips" if external else "Siemens", "cohort": "external" if external else "internal",
               "lge": lge, "age": 40 + i, "sex": "M" if i % 2 else "F", "LVEF": 60.0 + i % 5,
               "scar_slices": "3;4" if lge else ""}
        for phase in ("ED", "ES"):
            img, msk = ring_stack(n_slices, size, rng, bool(lge))
            write_volume(img, root / "images" / f"{pid}_{phase}.nii.gz")
            write_volume(msk, root / "masks" / f"{pid}_{phase}.nii.gz")
            row[f"{phase.lower()}_image"] = f"images/{pid}_{phase}.nii.gz"
            row[f"{phase.lower()}_mask"] = f"masks/{pid}_{phase}.nii.gz"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture
def tiny_cohort(tmp_path: Path) -> Path:
    return make_cohort(tmp_path / "cohort")


@pytest.fixture(autouse=True)
def _restore_locale():
    """GDCM (SimpleITK's DICOM writer, used by some tests to make DICOM exams) switches the process locale to
    "C"; the library restores it after its own DICOM reads, and this keeps one test's writes from changing
    the text encoding of the tests after it."""
    saved = locale.setlocale(locale.LC_ALL)
    yield
    locale.setlocale(locale.LC_ALL, saved)


@pytest.fixture(autouse=True)
def _fresh_tracking():
    """Tracking is set up once per process (`cinescar.tracking.configure`, a job's script does it): a test that
    sets it up must not leave its MLflow store to the tests after it."""
    yield
    from cinescar import tracking

    tracking.configure(None)


# one local run of the `.test` study per session, shared by the end-to-end and SLURM tests
from workflow_runs import killed_then_resumed  # noqa: E402,F401

# ---- running side by side: `make test` = pytest -n 3 --dist loadgroup ------------------------------------------
# Tests of one group run in one worker, one after another, so that module- and session-scoped fixtures are built
# once. A test's group is its module, except for the groups below; a new test module needs nothing. The two
# groups whose fixtures wait most (a whole workflow run each) are sent first, each to its own worker, and the
# other workers run the CPU-bound modules beside them, the modules with most tests first.
#
# The groups are named here, not with `xdist_group` marks: pytest-xdist 3.8.0 groups marked tests by appending the
# group to `item._nodeid`, which pytest 9 no longer reads (its node ids are `item._id`), so with the pinned pair
# the marks group nothing. This scheduler reads the group from the test id instead.
GROUPS = {  # test id, or module, -> group
    "tests/test_slurm_cluster.py": "slurm-cluster",  # the SLURM run, then its comparison with the local run
    "tests/test_workflow_e2e.py": "workflow-e2e",  # the killed-then-resumed local run (tests/workflow_runs.py)
    "tests/test_module_use.py::test_snakemake_report_builds_on_the_tiny_run": "workflow-e2e",
}
FIRST_GROUPS = ("slurm-cluster", "workflow-e2e")


def xdist_group_of(nodeid: str) -> str:
    for key, group in GROUPS.items():
        if nodeid == key or nodeid.startswith(key + "::") or nodeid.startswith(key + "["):
            return group
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    """Order the tests group by group: FIRST_GROUPS, then the larger groups first (the same in every worker)."""
    groups = [xdist_group_of(item.nodeid) for item in items]
    size = {g: groups.count(g) for g in groups}
    first = {g: i for i, g in reversed(list(enumerate(groups)))}
    rank = {g: i for i, g in enumerate(FIRST_GROUPS)}
    order = sorted(range(len(items)), key=lambda i: (rank.get(groups[i], len(rank)), -size[groups[i]],
                                                     first[groups[i]], i))
    items[:] = [items[i] for i in order]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with xdist_group_of() as the scope, in collection order (set above)."""

        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return GroupScheduling(config, log)
