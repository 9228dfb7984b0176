"""Defaults have one home, config/schema.yaml (issue 17): code that meets a config without a key takes the
schema's default, and no `.get("key", literal)` fallback in the DL stage restates one that differs."""

from __future__ import annotations

import ast

import yaml

from conftest import REPO

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text(encoding="utf-8"))


def _leaf_defaults(node: dict, path: tuple[str, ...] = ()) -> dict[str, list[tuple[str, object]]]:
    """key name -> [(dotted path, default)] for every schema leaf that has a default."""
    out: dict[str, list[tuple[str, object]]] = {}
    for key, prop in node.get("properties", {}).items():
        if "properties" in prop:
            for k, v in _leaf_defaults(prop, (*path, key)).items():
                out.setdefault(k, []).extend(v)
        elif "default" in prop:
            out.setdefault(key, []).append((".".join((*path, key)), prop["default"]))
    return out


def test_no_dl_fallback_disagrees_with_the_schema():
    dl = _leaf_defaults(SCHEMA["properties"]["dl"], ("dl",))
    dl["seed"] = [("seed", SCHEMA["properties"]["seed"]["default"])]
    drift = []
    for path in sorted((REPO / "src" / "cinescar" / "dl").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in dl):
                continue
            try:
                fallback = ast.literal_eval(node.args[1])
            except ValueError:
                continue  # a name or an expression (e.g. the schema's default itself): not a restated literal
            if all(fallback != default for _, default in dl[node.args[0].value]):
                drift.append(f"{path.name}:{node.lineno} {node.args[0].value}={fallback!r} "
                             f"(schema: {dl[node.args[0].value]})")
    assert drift == [], "fallbacks that restate a different default; use cinescar.config.schema_section: " + \
        "; ".join(drift)


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
    assert load_config()["dl"]["tuning"]["search_space"] == space or "search_space" in yaml.safe_load(
        (REPO / "config" / "config.yaml").read_text(encoding="utf-8"))["dl"]["tuning"]
