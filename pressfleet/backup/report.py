"""Markdown for the backup jobs' artifacts (pure: tested as plain functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from pressfleet.backup.catalog import CatalogEntry


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def backup_row(site: str, summary: dict) -> str:
    return (f"| {site} | {summary['backup']} | {summary['kind']} | {human_bytes(summary['bytes'])} | "
            f"{human_seconds(summary['seconds'])} | {summary['throughput_mb_s']:.1f} MB/s | "
            f"{summary['files_changed']} of {summary['files_total']} files, {human_bytes(summary['bytes_read'])} read | "
            f"{'yes' if summary['verified'] else 'not yet'} | {human_seconds(summary['rpo_seconds'])} | "
            f"{human_seconds(summary['rto_seconds'])} |")


BACKUP_HEADER = ("| site | backup | kind | stored | took | throughput | changed | verified | RPO | measured RTO |\n"
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def backup_markdown(title: str, rows: list[str], failures: list[str], notes: list[str]) -> str:
    lines = [f"# {title}", "", BACKUP_HEADER, *rows]
    if failures:
        lines += ["", "## Failed", *[f"- {f}" for f in failures]]
    if notes:
        lines += ["", "## Notes", *[f"- {n}" for n in notes]]
    lines += ["", "RPO: how much could be lost now (time since this backup started; binary logs shipped every "
              "15 minutes narrow it for the database). Measured RTO: the last restore-test's duration."]
    return "\n".join(lines)


def catalog_markdown(site: str, entries: list[CatalogEntry], now: datetime,
                     problems: Optional[list[str]] = None) -> str:
    from pressfleet.backup.catalog import describe

    lines = [f"# Backups of {site}", "", "| backup | kind | parent | stored | verified | age |",
             "| --- | --- | --- | --- | --- | --- |"]
    for e in reversed(entries):
        d = describe(e)
        age = (now - e.manifest.started_at).total_seconds()
        lines.append(f"| {d['backup']} | {d['kind']} | {d['parent'] or '-'} | {human_bytes(d['bytes'])} | "
                     f"{'yes' if d['verified'] else 'no'} | {human_seconds(age)} |")
    if problems:
        lines += ["", "## Left out (cannot be used)", *[f"- {p}" for p in problems]]
    return "\n".join(lines)
