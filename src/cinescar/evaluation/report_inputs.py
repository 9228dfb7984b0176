"""The files the report reads, by name, as its rule declared them (issue 26).

The report used to get a folder and open `metrics.csv`, `summary.json`, … in it by names it knew itself, so a
renamed output in `evaluation.smk` broke the report silently (an empty table) and Snakemake's DAG did not say what
the report read. Now the `report` rule's inputs are the only source: `ReportInputs.from_rule(inputs)` maps each
declared file's name (`metrics.csv`, `evidence.json`, `overlap.csv`, …) to its path, wherever it lies, and the
report asks for files by that name. A name that the rule does not declare is a clear error, not an empty section; a declared file that is absent on
disk (an older run's folder) still gives the report's sentence saying so.

`ReportInputs.from_folder(dirs…)` builds the same mapping from finished folders, for a user who re-renders an
old run's report and for the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cinescar.errors import CinescarError
from cinescar.evaluation.html_parts import _read_csv

# rule inputs that are not read as named tables: the tracking state (a dependency only) and the Grad-CAM
# folds' done.json lists (several files of one stem; kept apart as `gradcam`)
NOT_TABLES = frozenset({"mlflow", "gradcam"})


def _flatten(value: Any) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


@dataclass(frozen=True)
class ReportInputs:
    """file name → path of every file the report may read, plus the Grad-CAM folds' `done.json` files."""

    files: Mapping[str, Path]
    gradcam: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def from_rule(cls, inputs: Mapping[str, Any]) -> ReportInputs:
        """From the report rule's declared inputs (`dict(snakemake.input)`): two declared files of one name are
        an error, because the report could not tell them apart."""
        files: dict[str, Path] = {}
        for key, value in inputs.items():
            if key in NOT_TABLES:
                continue
            for path in _flatten(value):
                if path.name in files and files[path.name] != path:
                    raise CinescarError(f"the report rule declares two inputs named '{path.name}' (in "
                                        f"{files[path.name].parent.name}/ and {path.parent.name}/); rename one in "
                                        "workflow/rules/")
                files[path.name] = path
        return cls(files, tuple(_flatten(inputs.get("gradcam"))))

    @classmethod
    def from_folder(cls, *folders: str | Path | None, gradcam: Iterable[str | Path] = (),
                    index: str | Path | None = None) -> ReportInputs:
        """From finished folders (results/evaluation/, results/segmentation/): every csv/json file in them by name,
        the first folder winning a clash. For re-rendering a finished run and for tests."""
        files: dict[str, Path] = {}
        for folder in folders:
            if folder is None or not Path(folder).is_dir():
                continue
            for path in sorted(Path(folder).iterdir()):
                if path.suffix in (".csv", ".json") and path.is_file():
                    files.setdefault(path.name, path)
        if index is not None:
            files[Path(index).name] = Path(index)
        return cls(files, tuple(Path(g) for g in gradcam))

    def declared(self, name: str) -> bool:
        return name in self.files

    def path(self, name: str) -> Path | None:
        """The declared file of this name if it exists on disk, else None (the report then says it is missing)."""
        p = self.files.get(name)
        return p if p is not None and p.is_file() else None

    def _declared(self, name: str) -> Path:
        if name not in self.files:
            raise CinescarError(f"the report reads '{name}', which its rule does not declare as an input "
                                f"(declared: {', '.join(sorted(self.files))})")
        return self.files[name]

    def csv(self, stem: str) -> pd.DataFrame:
        """The declared table `stem`.csv (empty where the file is absent: an older run). An undeclared name is a
        bug in the report or its rule, said as such."""
        return _read_csv(self._declared(f"{stem}.csv"))

    def json(self, stem: str, required: bool = False) -> dict:
        """The declared `stem`.json, or {} where it is absent (unless `required`)."""
        p = self._declared(f"{stem}.json")
        if not p.is_file():
            if required:
                raise CinescarError(f"the report needs {p.name}, which the evaluation did not write", path=p)
            return {}
        return json.loads(p.read_text(encoding="utf-8"))
