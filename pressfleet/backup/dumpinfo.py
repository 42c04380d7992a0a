"""What backup_dump.sh reports on stderr after the dump: row counts and the binary log position."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DumpInfo:
    table_rows: dict[str, int] = field(default_factory=dict)
    binlog_file: str | None = None
    binlog_position: int | None = None


def parse_dump_report(stderr: str) -> DumpInfo:
    """Lines `PRESSFLEET rows `t` N` and `PRESSFLEET binlog FILE POS`; every other line is ignored."""
    info = DumpInfo()
    for line in stderr.splitlines():
        parts = line.strip().split(" ")
        if len(parts) == 4 and parts[:2] == ["PRESSFLEET", "rows"] and parts[3].isdigit():
            name = parts[2]
            if len(name) >= 2 and name[0] == name[-1] == "`":
                name = name[1:-1].replace("``", "`")
            info.table_rows[name] = int(parts[3])
        elif len(parts) == 4 and parts[:2] == ["PRESSFLEET", "binlog"] and parts[3].isdigit():
            info.binlog_file, info.binlog_position = parts[2], int(parts[3])
    return info


def parse_counts(stdout: str) -> dict[str, int]:
    """db_counts.sh's `TABLE N` lines."""
    out = {}
    for line in stdout.splitlines():
        name, _, n = line.rpartition(" ")
        if name and n.isdigit():
            out[name] = int(n)
    return out


def compare_rows(expected: dict[str, int], got: dict[str, int], what: str) -> list[str]:
    """One sentence per table whose rows differ from the manifest (or that is missing or extra)."""
    problems = []
    for table in sorted(set(expected) | set(got)):
        if table not in got:
            problems.append(f"table {table} is missing from {what}")
        elif table not in expected:
            problems.append(f"table {table} in {what} is not in the manifest")
        elif expected[table] != got[table]:
            problems.append(f"table {table} has {got[table]} rows in {what}, the manifest says {expected[table]}")
    return problems
