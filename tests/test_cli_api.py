"""One CLI pattern (issue 17): every command is a library function `*_api` that works without argparse; the
command line only parses its arguments and prints what the function returns."""

from __future__ import annotations

import json

import pytest

from cinescar.errors import CinescarError


def test_config_api_returns_the_validated_config_and_its_hash():
    from cinescar.config import config_api, config_hash, load_config

    cfg, digest = config_api()
    assert cfg == load_config() and digest == config_hash(cfg)


def test_validate_api_returns_the_report_and_writes_it(tiny_cohort, tmp_path, capsys):
    from cinescar.cohort.validate import validate_api

    report = validate_api(tiny_cohort, manifest_only=True, json_path=tmp_path / "report.json")
    assert report.n_patients == report.n_internal + report.n_external > 0
    assert json.loads((tmp_path / "report.json").read_text())["n_patients"] == report.n_patients
    assert capsys.readouterr().out == ""  # printing is the command line's job


def test_screen_api_refuses_an_ambiguous_request_before_reading_anything(tmp_path):
    from cinescar.screening.screen import screen_api

    with pytest.raises(CinescarError, match="give either an exam folder or --manifest"):
        screen_api(tmp_path / "no-bundle")
    with pytest.raises(CinescarError, match="--manifest needs --patient"):
        screen_api(tmp_path / "no-bundle", manifest=tmp_path / "manifest.csv")


def test_the_command_line_prints_what_the_api_returns(tiny_cohort, capsys):
    from cinescar.cli import main

    assert main(["validate", str(tiny_cohort), "--manifest-only"]) == 0
    assert capsys.readouterr().out.startswith(f"cohort {tiny_cohort}: OK — ")
