"""Where a run's report goes, and markdown helpers for the artifacts."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from pressfleet.paths import state_dir

GIB = 1024**3


def report_dir(flow: str, run_id: str | None = None, *, root: Path | None = None) -> Path:
    """`state_dir()/reports/<flow>/<run-id or UTC timestamp>/`, created."""
    name = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))
    d = (root or state_dir() / "reports") / re.sub(r"[^A-Za-z0-9._-]", "_", flow) / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


def fmt_num(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or (not isinstance(x, str) and pd.isna(x)):
        return "-"
    if isinstance(x, str):
        return x
    return f"{float(x):,.{digits}f}"


def fmt_bytes(x: Any) -> str:
    if x is None or pd.isna(x):
        return "-"
    x = float(x)
    for unit, k in (("TiB", 1024**4), ("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(x) >= k:
            return f"{x / k:,.1f} {unit}"
    return f"{x:,.0f} B"


def fmt_usd(x: Any) -> str:
    return "-" if x is None or pd.isna(x) else f"${float(x):,.2f}"


def md_escape(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame, columns: dict[str, str] | Iterable[str] | None = None,
             formats: dict[str, Callable[[Any], str]] | None = None, *, max_rows: int = 200) -> str:
    """A markdown table of `df`: `columns` maps column -> header (or lists columns), `formats` column -> fn."""
    if columns is None:
        columns = {c: c for c in df.columns}
    elif not isinstance(columns, dict):
        columns = {c: c for c in columns}
    formats = formats or {}
    if df.empty:
        return "_(none)_"
    lines = ["| " + " | ".join(columns.values()) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for _, row in df.head(max_rows).iterrows():
        cells = []
        for c in columns:
            v = row.get(c)
            f = formats.get(c)
            if f is not None:
                cells.append(md_escape(f(v)))
            elif isinstance(v, float):
                cells.append(fmt_num(v))
            elif isinstance(v, pd.Timestamp):
                cells.append(f"{v:%Y-%m-%d %H:%M}")
            else:
                cells.append(md_escape("-" if v is None or (not isinstance(v, (list, dict)) and pd.isna(v)) else v))
        lines.append("| " + " | ".join(cells) + " |")
    if len(df) > max_rows:
        lines.append(f"\n_{len(df) - max_rows} more row(s) in the CSV beside the report._")
    return "\n".join(lines)


def file_link(path: Path | str, text: str | None = None) -> str:
    p = Path(path).resolve()
    return f"[{text or p.name}]({p.as_uri()})"


def write_report(directory: Path, name: str, markdown: str, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write the markdown (and each table as CSV) into the run's folder; returns the markdown's path."""
    directory.mkdir(parents=True, exist_ok=True)
    for tname, df in (tables or {}).items():
        df.to_csv(directory / f"{tname}.csv", index=False)
    path = directory / f"{name}.md"
    path.write_text(markdown)
    return path


def run_report_dir(flow: str) -> Path:
    """The folder for this flow run's report: named by the Prefect flow run's id when there is one."""
    run_id = None
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:  # noqa: BLE001 - outside a flow run: a timestamp
        run_id = None
    return report_dir(flow, str(run_id) if run_id else None)
