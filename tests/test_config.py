"""The config schema: defaults for every key, clear messages for bad values."""

from __future__ import annotations

import pytest
import yaml

from cinescar.config import SCHEMA, config_hash, load_config
from cinescar.errors import ConfigError


def _walk(schema, path=""):
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}{key}", sub
        # an object whose default is given whole (e.g. a search space) needs no per-key defaults below it
        if sub.get("type") == "object" and not sub.get("default"):
            yield from _walk(sub, f"{path}{key}.")


def test_every_key_has_description_and_default():
    schema = yaml.safe_load(SCHEMA.read_text())
    missing = [k for k, sub in _walk(schema) if "description" not in sub or "default" not in sub]
    assert missing == []


def test_defaults_fill_and_hash_is_stable():
    a, b = load_config(), load_config()
    assert a == b and config_hash(a) == config_hash(b)
    assert a["preprocessing"]["size"] == 256 and a["splits"]["folds"] == 5
    assert config_hash(load_config(overrides={"seed": 7})) != config_hash(a)


@pytest.mark.parametrize("override, key", [({"splits": {"folds": 1}}, "splits.folds"),
                                           ({"nonsense": 1}, "nonsense"),
                                           ({"preprocessing": {"center_on": "x"}}, "preprocessing.center_on")])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        load_config(overrides=override)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
