"""Many exams, one start-up (issue 27): `cinescar screen --out-dir` on a folder of exam folders and on a manifest
gives each exam the result screening it alone gives; broken exams are named, never dropped."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from screening_fixtures import train_tiny_study, working_dir

from cinescar.models import IMAGE_MODELS as MODELS


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return train_tiny_study(tmp_path_factory.mktemp("batch") / "study")


@pytest.fixture(scope="module")
def bundle_dir(study):
    from cinescar.screening.publish import build_bundle

    out = study.root / "results" / "bundle"
    with working_dir(study.root):
        build_bundle(out, cfg=study.cfg, **study.workflow_inputs())
    return out


def _exam_folder(study, pid: str, dest: Path, masks: bool = True) -> Path:
    row = pd.read_csv(study.cohort / "manifest.csv", dtype=str).set_index("patient_id").loc[pid]
    dest.mkdir(parents=True)
    names = {"ed_image": "ED", "es_image": "ES", **({"ed_mask": "ED_mask", "es_mask": "ES_mask"} if masks else {})}
    for col, stem in names.items():
        src = study.cohort / row[col]
        shutil.copy(src, dest / f"{stem}{''.join(src.suffixes)}")
    return dest


def _numbers(result: dict) -> dict:
    """Everything a result says about the exam's probabilities and decisions (not its timing or paths)."""
    return {"models": {m: {k: result["models"][m][k] for k in ("fold_probabilities", "probability", "cutoff",
                                                                "decision", "driving_image", "n_images_scored")}
                       for m in MODELS},
            "images": result["images"], "warnings": result["warnings"], "patient_id": result["patient_id"]}


@pytest.fixture(scope="module")
def exams(study, tmp_path_factory):
    """A folder of exam folders: three good ones, one without its ES image, one a name that is no patient ID, and a
    plain file."""
    pids = pd.read_csv(study.cohort / "manifest.csv", dtype=str)["patient_id"].tolist()
    root = tmp_path_factory.mktemp("exams")
    for pid in pids[:3]:
        _exam_folder(study, pid, root / pid)
    broken = _exam_folder(study, pids[3], root / "BROKEN-1")
    for p in broken.glob("ES.*"):
        p.unlink()
    _exam_folder(study, pids[4], root / "not a patient id")
    (root / "notes.txt").write_text("not an exam\n")
    return root, pids[:3]


def test_a_folder_of_exams_gives_each_exam_its_single_screening_result(study, bundle_dir, exams, tmp_path):
    from cinescar.screening.batch import ERROR_FORMAT, SUMMARY_COLUMNS, screen_batch
    from cinescar.screening.screen import RESULT_FORMAT, screen_api

    root, good = exams
    out = tmp_path / "out"
    result = screen_batch(bundle_dir, root, out_dir=out, workers=2, no_gradcam=True)
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    # every entry listed, in the folder's order, none dropped
    assert summary["exam"].tolist() == ["BROKEN-1", *good, "not a patient id", "notes.txt"]
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary.set_index("exam")["status"].to_dict() == {
        "BROKEN-1": "error", **{p: "screened" for p in good}, "not a patient id": "error", "notes.txt": "skipped"}
    assert result.workers == 2 and result.exams_per_minute > 0
    for pid in good:
        alone = screen_api(bundle_dir, root / pid, no_gradcam=True)
        written = json.loads((out / f"{pid}.json").read_text())
        assert written["format"] == RESULT_FORMAT
        assert _numbers(written) == _numbers(alone)  # the same numbers, bit for bit (floats compared exactly)
        row = summary.set_index("exam").loc[pid]
        for m in MODELS:
            assert float(row[f"{m}_probability"]) == pytest.approx(alone["models"][m]["probability"], abs=0, rel=1e-15)
            assert row[f"{m}_decision"] == alone["models"][m]["decision"]
    broken = json.loads((out / "BROKEN-1.json").read_text())
    assert broken["format"] == ERROR_FORMAT and broken["error"] == "CohortError" and "ES" in broken["message"]
    named = json.loads((out / "not_a_patient_id.json").read_text())
    assert "must match" in named["message"]
    assert summary.set_index("exam").loc["not a patient id", "result"] == "not_a_patient_id.json"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temporary files
    assert not any(p.name.endswith("_gradcam") for p in out.iterdir())  # --no-gradcam


def test_a_whole_manifest_in_one_process_through_the_cli(study, bundle_dir, tmp_path, capsys):
    from cinescar.cli import main
    from cinescar.screening.screen import screen_api

    out = tmp_path / "out"
    manifest = study.cohort / "manifest.csv"
    rc = main(["screen", "--bundle", str(bundle_dir), "--manifest", str(manifest), "--out-dir", str(out),
               "--workers", "1", "--no-gradcam"])
    printed = capsys.readouterr().out
    assert rc == 0
    pids = pd.read_csv(manifest, dtype=str)["patient_id"].tolist()
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert summary["exam"].tolist() == pids and set(summary["status"]) == {"screened"}
    assert f"{len(pids)} screened" in printed and "exams per minute after start-up" in printed
    alone = screen_api(bundle_dir, manifest=manifest, patient=pids[-1], no_gradcam=True)
    assert _numbers(json.loads((out / f"{pids[-1]}.json").read_text())) == _numbers(alone)
    # one exam's arguments are refused with --out-dir, not ignored
    assert main(["screen", "--bundle", str(bundle_dir), "--manifest", str(manifest), "--patient", pids[0],
                 "--out-dir", str(out)]) == 2
    assert "--patient" in capsys.readouterr().err


def test_an_exam_whose_worker_dies_is_an_error_and_the_others_go_on(study, bundle_dir, exams, tmp_path,
                                                                    monkeypatch):
    from cinescar.screening import batch, screen

    root, good = exams
    real = screen.screen_api

    def dies_on_the_second(bundle, exam=None, **kwargs):
        if exam is not None and Path(exam).name == good[1]:
            os._exit(9)  # as if killed (out of memory, a crash in a library)
        return real(bundle, exam, **kwargs)

    monkeypatch.setattr(screen, "screen_api", dies_on_the_second)  # the forked workers inherit it
    result = batch.screen_batch(bundle_dir, root, out_dir=tmp_path / "out", workers=2, no_gradcam=True)
    status = result.summary.set_index("exam")["status"].to_dict()
    assert status[good[0]] == status[good[2]] == "screened"
    assert status[good[1]] == "error"
    assert "died" in result.summary.set_index("exam").loc[good[1], "error"]


def test_a_folder_that_is_one_exam_is_refused(study, bundle_dir, exams, tmp_path):
    from cinescar.errors import CinescarError
    from cinescar.screening.batch import screen_batch

    root, good = exams
    with pytest.raises(CinescarError, match="one exam folder"):
        screen_batch(bundle_dir, root / good[0], out_dir=tmp_path / "out")
