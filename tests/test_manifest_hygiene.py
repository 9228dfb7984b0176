"""A manifest that is wrong in form is refused before anything reads it: repeated columns, no patients, a folder
where the file belongs, a cohort the configured split cannot use, paths leading out of the cohort folder.
Errors reach the job's log and the CLI prints one line (a traceback only with --debug)."""

from __future__ import annotations

import logging
import os
import sys

import pandas as pd
import pytest

from cinescar.cli import main
from cinescar.cohort.contract import read_manifest
from cinescar.cohort.validate import CohortValidationError, validate_cohort
from cinescar.config import load_config
from cinescar.errors import CohortError
from cinescar.logs import setup_logging


def _manifest(cohort) -> pd.DataFrame:
    return pd.read_csv(cohort / "manifest.csv", dtype=str, keep_default_na=False)


def test_repeated_column_is_refused_before_parsing(tiny_cohort):
    text = (tiny_cohort / "manifest.csv").read_text().splitlines()
    # a second `lge` column whose values contradict the first: pandas would read it as lge.1 and use the first
    lines = [text[0] + ",lge"] + [line + ",1" for line in text[1:]]
    (tiny_cohort / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(CohortError, match="repeats column.*lge"):
        read_manifest(tiny_cohort)


@pytest.mark.parametrize("content", ["", "\n", "header"])
def test_empty_or_header_only_manifest_fails_with_nonzero_exit(tiny_cohort, content, capsys):
    if content == "header":  # every column the contract needs, and no patient (was: "OK", exit 0)
        content = (tiny_cohort / "manifest.csv").read_text().splitlines()[0] + "\n"
    (tiny_cohort / "manifest.csv").write_text(content)
    assert main(["validate", str(tiny_cohort)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "manifest" in err and ("empty" in err or "no patient" in err), err


def test_folder_where_the_manifest_belongs(tiny_cohort, capsys):
    (tiny_cohort / "manifest.csv").unlink()
    (tiny_cohort / "manifest.csv").mkdir()
    assert main(["validate", str(tiny_cohort)]) == 2
    err = capsys.readouterr().err
    assert "manifest.csv is a folder" in err and "Traceback" not in err


def test_cohort_too_small_or_one_class_for_the_configured_folds(tiny_cohort, capsys):
    cfg = load_config(overrides={"splits": {"folds": 7}})  # 7 LGE+ and 7 LGE- internal: 8 of each needed
    with pytest.raises(CohortValidationError, match=r"7 LGE\+, 7 LGE-.*splits.folds"):
        validate_cohort(tiny_cohort, cfg=cfg)
    assert validate_cohort(tiny_cohort, cfg=load_config(overrides={"splits": {"folds": 3}})).n_patients == 18
    m = _manifest(tiny_cohort)
    m.loc[m.cohort == "internal", "lge"] = "0"
    m.loc[m.cohort == "internal", "scar_slices"] = ""
    m.to_csv(tiny_cohort / "manifest.csv", index=False)
    assert main(["validate", str(tiny_cohort)]) == 2  # the CLI checks against the (default) config
    assert "0 LGE+, 14 LGE-" in capsys.readouterr().err


def test_paths_outside_the_cohort_folder_need_an_opt_in(tiny_cohort, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    m = _manifest(tiny_cohort)
    (tiny_cohort / "images/T001_ED.nii.gz").rename(outside / "T001_ED.nii.gz")
    (tiny_cohort / "images/T002_ED.nii.gz").rename(outside / "T002_ED.nii.gz")
    (tiny_cohort / "images/T003_ED.nii.gz").rename(outside / "T003_ED.nii.gz")
    os.symlink(outside / "T003_ED.nii.gz", tiny_cohort / "images/T003_ED.nii.gz")
    m.loc[m.patient_id == "T001", "ed_image"] = "../elsewhere/T001_ED.nii.gz"
    m.loc[m.patient_id == "T002", "ed_image"] = str(outside / "T002_ED.nii.gz")
    m.to_csv(tiny_cohort / "manifest.csv", index=False)
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(tiny_cohort)
    text = str(info.value)
    for pid in ("T001", "T002", "T003"):  # '..', an absolute path, a symlink
        assert f"patient {pid}, file" in text
    assert text.count("leads outside the cohort folder") == 3
    assert validate_cohort(tiny_cohort, allow_outside=True).n_patients == 18
    assert validate_cohort(tiny_cohort, cfg=load_config(overrides={"cohort": {"allow_outside_paths": True}}))
    assert main(["validate", str(tiny_cohort), "--allow-outside-paths"]) == 0


def test_cli_traceback_only_with_debug(tiny_cohort, capsys):
    (tiny_cohort / "manifest.csv").write_text("")
    assert main(["validate", str(tiny_cohort)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(CohortError):
        main(["--debug", "validate", str(tiny_cohort)])


def test_errors_reach_the_jobs_log(tmp_path, monkeypatch):
    log = tmp_path / "logs" / "job.log"
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    setup_logging(log)
    try:
        raise CohortError("mask is empty", "P001", "masks/P001_ED.nii.gz")
    except CohortError:
        sys.excepthook(*sys.exc_info())
    try:
        raise ZeroDivisionError("a bug")
    except ZeroDivisionError:
        sys.excepthook(*sys.exc_info())
    text = log.read_text()
    assert "error: patient P001, file masks/P001_ED.nii.gz: mask is empty" in text
    assert "internal error: ZeroDivisionError" in text and "Traceback" in text
    assert text.count("Traceback") == 1  # the user's error is one line
    logging.getLogger().handlers.clear()
