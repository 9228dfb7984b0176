"""Small HTML pieces of the study report (escaped tables, numbers, p values, embedded PNGs).

Their own module so that `report` and `report_evidence` both import them without importing each other."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _fmt_num(v: object, digits: int = 2) -> str:
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v)
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    if f != f:  # NaN
        return "–"
    return f"{f:.{digits}f}"


def _fmt_p(p: object) -> str:
    try:
        f = float(p)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if f != f:
        return "–"
    return "<0.001" if f < 0.001 else f"{f:.3f}"


def _table(df: pd.DataFrame, formats: dict[str, callable] | None = None, digits: int = 2) -> str:
    """A DataFrame as an escaped HTML table; numbers formatted, NaN shown as an en dash."""
    if df is None or df.empty:
        return '<p class="note">(no data)</p>'
    formats = formats or {}
    out = df.copy()
    for col in out.columns:
        fn = formats.get(col)
        if fn is not None:
            out[col] = out[col].map(fn)
        elif pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(lambda v: _fmt_num(v, digits))
        else:
            out[col] = out[col].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else v)
    return out.to_html(index=False, escape=True, border=0)


def _img(b64: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}"{w}>'


def _file_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")
