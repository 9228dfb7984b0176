"""Defaults have one home, the schema (package data `cinescar/data/schema.yaml`, in the repository a link to
config/schema.yaml; issues 17 and 26): code that meets a config without a key takes the schema's default, and no
`.get("key", literal)` fallback anywhere in src/ restates one that differs."""

from __future__ import annotations

import ast

import yaml

from conftest import REPO

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text(encoding="utf-8"))

NOT_CONFIG = {
    # (module, key, fallback): `.get` calls on dicts that are not the config, whose key only shares a config key's
    # name. Each says what it reads instead.
    ("baselines/run.py", "variables", ()): "a baseline's status.json (the variables it used)",
    ("baselines/run.py", "folds", None): "a baseline's status.json (per-fold validation AUCs)",
    ("dl/tune.py", "step", 1): "one dimension of the Optuna search space (an integer range's step)",
    ("evaluation/plots.py", "operating_point", "validation"): "final_models.json's entry of a model",
    ("screening/publish.py", "operating_point", "validation"): "final_models.json's entry of a model",
    ("evaluation/report_evidence.py", "n_bootstrap", 0): "evidence.json (how many resamples it holds)",
}


def _leaf_defaults(node: dict, path: tuple[str, ...] = ()) -> dict[str, list[tuple[str, object]]]:
    """key name -> [(dotted path, default)] for every schema key that has a default (objects' own included)."""
    out: dict[str, list[tuple[str, object]]] = {}
    for key, prop in node.get("properties", {}).items():
        if "properties" in prop:
            for k, v in _leaf_defaults(prop, (*path, key)).items():
                out.setdefault(k, []).extend(v)
        if "default" in prop:
            out.setdefault(key, []).append((".".join((*path, key)), prop["default"]))
    return out


def _same(a: object, b: object) -> bool:
    """Equal as YAML would write them (a tuple fallback equals the schema's list)."""
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return norm(a) == norm(b)


def test_no_fallback_in_src_disagrees_with_the_schema():
    defaults = _leaf_defaults(SCHEMA)
    drift = []
    for path in sorted((REPO / "src" / "cinescar").rglob("*.py")):
        module = path.relative_to(REPO / "src" / "cinescar").as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in defaults):
                continue
            key = node.args[0].value
            try:
                fallback = ast.literal_eval(node.args[1])
            except ValueError:
                continue  # a name or an expression (e.g. the schema's default itself): not a restated literal
            if any(_same(fallback, default) for _, default in defaults[key]):
                continue
            waiver = (module, key, tuple(fallback) if isinstance(fallback, list) else
                      None if isinstance(fallback, dict) else fallback)
            if waiver in NOT_CONFIG:
                continue
            drift.append(f"{module}:{node.lineno} {key}={fallback!r} (schema: {defaults[key]})")
    assert drift == [], "fallbacks that restate a different default; use cinescar.config.schema_default or " + \
        "schema_section (or, for a dict that is not the config, add it to NOT_CONFIG): " + "; ".join(drift)


def test_the_default_config_holds_only_what_differs_from_the_schema():
    """config/config.yaml shows only the default study's own choices (issue 26): every value it sets differs
    from the schema's default, so a default is never written down twice."""
    from cinescar.config import schema_defaults

    given = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8")) or {}
    restated = []

    def walk(node: dict, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            default = schema_defaults(*path).get(key, object())
            if isinstance(value, dict) and isinstance(default, dict):
                walk(value, (*path, key))
            elif _same(value, default):
                restated.append(".".join((*path, key)))

    walk(given, ())
    assert restated == [], f"config/config.yaml restates the schema's default of {restated}: leave them out"


def test_the_schema_is_package_data():
    """The package finds its schema without a checkout: package data loaded with importlib.resources."""
    import tomllib

    from cinescar.config import SCHEMA

    assert SCHEMA.relative_to(REPO / "src" / "cinescar").as_posix() == "data/schema.yaml"
    assert yaml.safe_load(SCHEMA.read_text(encoding="utf-8")) == SCHEMA_FILE_CONTENT()
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "data/*.yaml" in shipped["package-data"]["cinescar"]


def SCHEMA_FILE_CONTENT() -> dict:  # noqa: N802 - read again, not the module constant
    return yaml.safe_load((REPO / "config" / "schema.yaml").read_text(encoding="utf-8"))


def test_training_keys_left_out_take_the_schemas_defaults():
    from cinescar.config import schema_defaults, schema_section
    from cinescar.dl.train import merged_params

    training = schema_defaults("dl", "training")
    assert merged_params({})["learning_rate"] == training["learning_rate"]
    assert merged_params({"network": {"dropout": 0.1}})["dropout"] == 0.1
    partial = schema_section({"training": {"batch_size": 2}}, "training", defaults=("dl", "training"))
    assert partial == {**training, "batch_size": 2}
    assert partial["early_stopping_patience"] == training["early_stopping_patience"]
    assert partial["max_epochs"] == training["max_epochs"]


def test_schema_defaults_keep_an_objects_own_default_under_empty_nested_ones():
    """dl.tuning.search_space: its default search space, not {dimension: {}} for every dimension."""
    from cinescar.config import load_config, schema_defaults

    space = schema_defaults("dl", "tuning")["search_space"]
    assert space == SCHEMA["properties"]["dl"]["properties"]["tuning"]["properties"]["search_space"]["default"]
    assert all(space.values())
    assert load_config()["dl"]["tuning"]["search_space"] == space
