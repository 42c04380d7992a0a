"""The README's shape table, enforced: what each folder may import (lazy, in-function imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# Who may NOT import what. A layer is a top folder (flows, tasks, blocks) or a package (or root module) of pressfleet/.
EDGES = ["pressfleet/lab", "pressfleet/stack", "pressfleet/cli"]  # the assembling and machine-specific layers
APP = ["flows", "tasks"]
FORBIDDEN: dict[str, list[str]] = {
    "pressfleet/validate": ["pressfleet/*", "blocks", *APP],
    "pressfleet/paths": ["pressfleet/*", "blocks", *APP],
    # the pure core: no connection, no storage, no lab, no Prefect blocks or flows
    "pressfleet/render": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/plan": ["pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/metrics": ["pressfleet/ssh", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/updates": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/multisite": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/alerts": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/watch": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", "pressfleet/cli", *APP],
    "pressfleet/analysis": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    # the I/O edges know only their own concern
    "pressfleet/ssh": ["pressfleet/fleet", "pressfleet/backup", "pressfleet/storage", *EDGES, "blocks", *APP],
    "pressfleet/storage": ["pressfleet/ssh", "pressfleet/fleet", "pressfleet/backup", *EDGES, "blocks", *APP],
    # the fleet model and the backup concern read saved blocks, never the lab, the CLI or a flow
    "pressfleet/fleet": [*EDGES, *APP],
    "pressfleet/backup": [*EDGES, *APP],
    "pressfleet/deploy": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", *EDGES, "blocks", *APP],
    "pressfleet/pipelines": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", "pressfleet/fleet", *EDGES, "blocks", *APP],
    "pressfleet/containers": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", "pressfleet/fleet", *EDGES, "blocks", *APP],
    "pressfleet/kube": ["pressfleet/ssh", "pressfleet/storage", "pressfleet/backup", "pressfleet/fleet", *EDGES, "blocks", *APP],
    "pressfleet/dr": ["pressfleet/storage", "pressfleet/backup", *EDGES, *APP],
    "pressfleet/lab": ["pressfleet/stack", "pressfleet/cli", *APP],
    "pressfleet/stack": ["pressfleet/cli"],
    "pressfleet/cli": [],
    "blocks": [*EDGES, *APP],
    "tasks": [*EDGES, "flows", "pressfleet/metrics", "pressfleet/analysis"],
    "flows": ["pressfleet/cli", "pressfleet/stack"],
    "pressfleet/templates": ["pressfleet/*", "blocks", *APP],  # scripts that run on the host: standalone
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] != "pressfleet":
        return rel.parts[0]
    return "pressfleet/" + (rel.parts[1] if len(rel.parts) > 2 else rel.stem)


def imported_layers(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pressfleet" and len(parts) > 1:
                if (ROOT / "pressfleet" / parts[1]).is_dir() or (ROOT / "pressfleet" / f"{parts[1]}.py").is_file():
                    found.add(f"pressfleet/{parts[1]}")
            elif parts[0] in ("flows", "tasks", "blocks"):
                found.add(parts[0])
    return found


def violations() -> list[str]:
    out = []
    for top in ("pressfleet", "flows", "tasks", "blocks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.parent == ROOT / "pressfleet" and path.stem == "__init__":
                continue
            layer = layer_of(path)
            rules = FORBIDDEN.get(layer)
            assert rules is not None, f"{path.relative_to(ROOT)}: layer {layer} is not in the shape table"
            for target in imported_layers(path) - {layer}:
                if any(target == r or (r.endswith("/*") and target.startswith(r[:-1])) for r in rules):
                    out.append(f"{path.relative_to(ROOT)} ({layer}) imports {target}")
    return out


def test_every_import_follows_the_shape_table():
    assert violations() == []


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The rule is live: a pure module importing the lab is reported (checked on a copy of the tree's layout)."""
    fake = ROOT / "pressfleet" / "render" / "configs.py"
    found = imported_layers(fake)
    assert "pressfleet/lab" not in found
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from pressfleet.lab import hosts\n")
    assert "pressfleet/lab" in imported_layers(bad)
    assert "pressfleet/lab" in FORBIDDEN["pressfleet/render"]


def test_no_module_at_the_root_but_the_foundations():
    roots = sorted(p.stem for p in (ROOT / "pressfleet").glob("*.py") if p.stem != "__init__")
    assert roots == ["paths", "validate"]
