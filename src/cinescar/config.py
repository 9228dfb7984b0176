"""Configuration: one YAML file, validated against one JSON schema, defaults filled from the schema.

The schema is package data (`cinescar/data/schema.yaml`, loaded with importlib.resources) and the one home of
every default; `config/config.yaml` holds only what the default study chooses differently (config/README.md).

The same validation runs when Snakemake starts (`workflow/rules/common.smk`) and when the CLI loads a
config, so a bad key or value stops both with the same message. The schema is the single place where a
key's meaning and default are written down.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from cinescar.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "config.yaml"


def _packaged_schema() -> Path:
    """The schema shipped inside the package (`cinescar/data/schema.yaml`, package data), so that an installed
    cinescar finds it without a checkout. In the repository it is a link to `config/schema.yaml`, the file
    people edit; a wheel carries the file itself."""
    from importlib.resources import files

    return Path(str(files("cinescar").joinpath("data", "schema.yaml")))


SCHEMA = _packaged_schema()


def _deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _first_problem(cfg: dict, schema_path: Path) -> str | None:
    """A one-line description of the first schema violation (key path + reason), or None."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"config key {where}: {err.message}"


def validate_config(cfg: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Validate in place and fill defaults; raise ConfigError naming the offending key.

    jsonschema gives the short, key-level message users need. The defaults are then filled as a deep merge: the
    schema's whole default tree under what the config gives, a mapping key by key (a config that gives
    `dl.tuning.search_space: {base_width: ...}` keeps the default learning-rate range), any other value whole.
    That is what Snakemake does with `configfile:` files, so a config file that shows only what differs
    (config/config.yaml) gives exactly what one that lists every default gave (issue 26). snakemake.utils.validate
    then checks the result with the schema's own defaults filling anything left.
    """
    from snakemake.utils import validate

    schema_path = Path(schema_path)
    problem = _first_problem(cfg, schema_path)
    if problem:
        raise ConfigError(f"invalid configuration: {problem}")
    filled = _deep_update(copy.deepcopy(_defaults(_schema(schema_path))), copy.deepcopy(cfg))
    cfg.clear()
    cfg.update(filled)
    validate(cfg, str(schema_path), set_default=True)
    return cfg


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read a config file (default `config/config.yaml`), apply overrides, validate, fill defaults."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if overrides:
        _deep_update(cfg, copy.deepcopy(overrides))
    return validate_config(cfg)


@functools.lru_cache(maxsize=4)
def _schema(schema_path: Path) -> dict:
    return yaml.safe_load(Path(schema_path).read_text())


def _defaults(node: dict) -> dict:
    out = {}
    for key, prop in node.get("properties", {}).items():
        if "properties" in prop:
            # the object's own default, with its keys' defaults merged in (an empty nested default, as
            # search_space.base_width's, must not blank the object's default for that key)
            out[key] = _deep_update(copy.deepcopy(prop.get("default", {})), _defaults(prop))
        elif "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


def schema_defaults(*section: str, schema_path: str | Path = SCHEMA) -> dict:
    """The schema's defaults for one config section (e.g. `schema_defaults("bundle")`), nested keys included.

    For code that receives a config that was not validated (a test's hand-made dict, an old bundle's
    metadata): the default then still comes from the schema, the one place it is written down.
    """
    node = _schema(Path(schema_path))
    for key in section:
        node = node["properties"][key]
    return _defaults(node)


def schema_default(*key: str, schema_path: str | Path = SCHEMA) -> Any:
    """The schema's default of one key (`schema_default("seed")`, `schema_default("cohort", "name")`): the
    fallback for `cfg.get(key, ...)` in code that may meet an unvalidated config, instead of a restated literal."""
    *section, leaf = key
    return schema_defaults(*section, schema_path=schema_path)[leaf]


def schema_section(cfg: dict | None, *section: str, defaults: tuple[str, ...] | None = None) -> dict:
    """Section `section` of `cfg` (e.g. `schema_section(cfg, "dl", "training")`) over the schema's defaults for
    it: a key the config leaves out takes the schema's default, never a fallback restated in code.

    `defaults`: where the section sits in the schema when `cfg` is itself a section (`schema_section(dl_cfg,
    "training", defaults=("dl", "training"))`); default `section`. One level: a key the config gives replaces
    the default whole (a given `search_space` is the search space).
    """
    given: Any = cfg
    for key in section:
        given = (given or {}).get(key)
    return {**schema_defaults(*(section if defaults is None else defaults)), **(given or {})}


def config_api(path: str | Path | None = None) -> tuple[dict, str]:
    """`cinescar config` as a function: the validated config with every default filled in, and its hash."""
    cfg = load_config(path)
    return cfg, config_hash(cfg)


def config_hash(cfg: dict[str, Any]) -> str:
    """A short, stable fingerprint of a config, used to tie outputs and MLflow runs to their config."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def add_arguments(parser) -> None:
    """Arguments of `cinescar config` (registered by `cinescar.cli`)."""
    parser.add_argument("--config", default=None, help="config file (default config/config.yaml)")


def main(args) -> int:
    """`cinescar config`: print the validated config, every default filled in, and its hash."""
    cfg, digest = config_api(args.config)
    print(yaml.safe_dump(cfg, sort_keys=False), end="")
    print(f"# config hash: {digest}")
    return 0
