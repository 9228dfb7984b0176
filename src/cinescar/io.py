"""Writing a file so that a reader never sees half of it: write beside it, then rename over it.

Why one helper: several stages mark completion by a file's presence (a cohort's manifest.csv, a
preprocessing shard's arrays) or are read while a later run rewrites them; an interrupted job must leave
either the old file or none, never a truncated one. `os.replace` within one folder is atomic on POSIX and
Windows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary file in `path`'s folder, then rename it to `path`.

    The temporary name keeps `path`'s extensions (`.x.npy.<random>.tmp.npy`), so writers that choose the
    format by extension (NumPy, SimpleITK, pandas) write the same bytes; it is removed if `write` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`path.write_text(text)` (UTF-8), atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
