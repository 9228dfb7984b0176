"""What leaves the machine is public by construction: no credentials in URIs, no absolute paths.

MLflow params and tags, logs, the study report and the bundle are shared beyond the machine that made them: a
tracking URI with `user:token@` or a path like /home/<name>/... must not travel with them. A module of its own
(issue 26) so that the report and the bundle can scrub what they write without importing MLflow tracking.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def public(value: Any) -> Any:
    """`value` (str, or dicts/lists of them) without credentials in URIs and without absolute paths.

    MLflow params and tags, logs and the bundle are shared beyond the machine that made them: a tracking URI
    with `user:token@` or a path like /home/<name>/... must not travel with them.
    """
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(public(v) for v in value)
    if isinstance(value, Path):
        return _relative(str(value))
    if not isinstance(value, str):
        return value
    text = _CREDENTIALS.sub(lambda m: m.group("scheme"), value)
    for prefix in ("sqlite:///", "file://"):
        if text.startswith(prefix) and text[len(prefix):].startswith("/"):
            return prefix + _relative(text[len(prefix):])
    if os.path.isabs(text) and "\n" not in text:
        return _relative(text)
    return text


def _relative(path: str) -> str:
    """An absolute path relative to the working (run) directory, else only its last component."""
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return f"<outside the run directory>/{p.name}"
