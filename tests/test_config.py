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


def test_a_partial_mapping_keeps_the_other_defaults_as_a_full_config_file_did():
    """config/config.yaml shows only what differs (issue 26); validation fills the defaults as a deep merge, as
    Snakemake merges config files, so a config giving one search dimension keeps the default others (as when
    config.yaml listed the whole default search space)."""
    from cinescar.config import schema_defaults, validate_config

    cfg = validate_config({"dl": {"tuning": {"search_space": {"base_width": {"choices": [2]}}}}})
    space = cfg["dl"]["tuning"]["search_space"]
    default = schema_defaults("dl", "tuning")["search_space"]
    assert list(space) == list(default) and space["base_width"] == {"choices": [2]}
    assert all(space[k] == v for k, v in default.items() if k != "base_width")
