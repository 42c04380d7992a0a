"""What `pressfleet fleet apply` would do, as a pure function of what the file says and what is saved.

Both sides are `BlockRecord`s: a block's kind, name and comparable field values (a secret is its sha256
digest, never its value; a site's server is the Server block's name). `plan_fleet(desired, saved)` returns
a `FleetPlan`: each block of the file to create, change (field by field: the file's value against the
saved one) or leave; saved blocks the file does not name (left as they are); identity collisions, which
refuse the whole apply (one address:port under two server names, one domain under two site blocks, a name
of the file that a saved block holds for another address or domain, one storage name under two storage kinds); and, per server, the sites to provision (new or changed sites,
and every site of a new or changed server), in the file's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

Op = Literal["create", "change", "leave"]


@dataclass(frozen=True)
class BlockRecord:
    kind: Literal["server", "site", "storage", "retention"]
    name: str
    type: str  # the block type's slug (server, wordpress-site, s3-storage, ...)
    fields: Mapping[str, Any]
    # identity: server -> ("address:port",); site -> its domain and aliases
    identity: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldChange:
    field: str
    file: Any
    saved: Any

    def text(self) -> str:
        if isinstance(self.file, str) and self.file.startswith("sha256:") or \
                isinstance(self.saved, str) and str(self.saved).startswith("sha256:"):
            return f"{self.field}: a different secret (values not shown)"
        return f"{self.field}: file {_show(self.file)} / saved {_show(self.saved)}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass(frozen=True)
class Action:
    kind: str
    name: str
    type: str
    op: Op
    changes: tuple[FieldChange, ...] = ()


@dataclass
class FleetPlan:
    actions: list[Action] = field(default_factory=list)
    collisions: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name in the file, sentence)
    not_in_file: list[tuple[str, str]] = field(default_factory=list)  # (kind, block name), left as they are
    provision: dict[str, list[str]] = field(default_factory=dict)  # server block -> site blocks, in order

    @property
    def changes_blocks(self) -> bool:
        return any(a.op != "leave" for a in self.actions)

    @property
    def nothing_to_do(self) -> bool:
        return not self.changes_blocks and not self.provision and not self.collisions

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "change": 0, "leave": 0}
        for a in self.actions:
            out[a.op] += 1
        return out

    def lines(self) -> list[str]:
        """The plan as a person reads it."""
        out = []
        for _, _, c in self.collisions:
            out.append(f"refused: {c}")
        for a in self.actions:
            label = {"server": "server", "site": "site", "storage": f"storage ({a.type})",
                     "retention": "retention"}[a.kind]
            out.append(f"{a.op:<6} {label} {a.name}")
            for ch in a.changes:
                out.append(f"         {ch.text()}")
        for kind, name in self.not_in_file:
            out.append(f"keep   {kind} {name} (saved, not in the file: left as it is)")
        for server, sites in self.provision.items():
            out.append(f"provision on {server}: {', '.join(sites)}")
        c = self.counts()
        out.append(f"{c['create']} to create, {c['change']} to change, {c['leave']} unchanged; "
                   f"{sum(len(s) for s in self.provision.values())} site(s) to provision")
        return out


def diff_fields(desired: Mapping[str, Any], saved: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Each field whose value differs, sorted by name (a field one side lacks counts as None)."""
    keys = sorted(set(desired) | set(saved))
    return tuple(FieldChange(k, desired.get(k), saved.get(k)) for k in keys if desired.get(k) != saved.get(k))


def plan_fleet(desired: list[BlockRecord], saved: list[BlockRecord]) -> FleetPlan:
    """The plan that makes SAVED match DESIRED. Pure: reads and changes nothing."""
    plan = FleetPlan()
    saved_by = {(r.kind, r.name, r.type): r for r in saved}
    wanted = {(r.kind, r.name) for r in desired}

    # identity collisions: one identity under two names (not one the saved blocks already hold under the file's
    # name too: the apply adds no second name, so it leaves that as it is)
    saved_identity = {(r.kind, r.name): set(r.identity) for r in saved}
    for kind, what in (("server", "address:port"), ("site", "domain")):
        owners: dict[str, str] = {}
        for r in saved:
            if r.kind == kind and (kind, r.name) not in wanted:
                for ident in r.identity:
                    owners.setdefault(ident, r.name)
        for r in desired:
            if r.kind != kind:
                continue
            for ident in r.identity:
                other = owners.get(ident)
                if other is not None and other != r.name and ident not in saved_identity.get((kind, r.name), ()):
                    plan.collisions.append((kind, r.name,
                        f"{kind} {r.name!r} in the file has the {what} {ident}, which the saved {kind} block "
                        f"{other!r} holds: use the name {other!r} in the file, or change or remove that block first"))
    # a name of the file that is a different saved block (another machine, another site)
    for r in desired:
        old = saved_by.get((r.kind, r.name, r.type))
        if r.kind in ("server", "site") and old is not None and old.identity and r.identity \
                and old.identity[0] != r.identity[0]:
            what = "address:port" if r.kind == "server" else "domain"
            plan.collisions.append((r.kind, r.name,
                                    f"{r.kind} {r.name!r} is saved with the {what} {old.identity[0]}, the file gives "
                                    f"{r.identity[0]}: that is another {r.kind} under the same name; rename it in the "
                                    f"file, or change the saved block first"))
    storage_types = {r.name: r.type for r in saved if r.kind == "storage"}
    for r in desired:
        if r.kind == "storage" and r.name in storage_types and storage_types[r.name] != r.type:
            plan.collisions.append(("storage", r.name, f"storage {r.name!r} is a {r.type} block in the file and "
                                                       f"a saved {storage_types[r.name]} block: rename one"))
    for r in desired:
        old = saved_by.get((r.kind, r.name, r.type))
        if old is None:
            plan.actions.append(Action(r.kind, r.name, r.type, "create"))
            continue
        changes = diff_fields(r.fields, old.fields)
        plan.actions.append(Action(r.kind, r.name, r.type, "change" if changes else "leave", changes))
    plan.not_in_file = sorted((r.kind, r.name) for r in saved if (r.kind, r.name) not in wanted)

    changed = {(a.kind, a.name) for a in plan.actions if a.op != "leave"}
    for r in desired:
        if r.kind != "site":
            continue
        server = r.fields.get("server")
        if ("site", r.name) in changed or ("server", server) in changed:
            plan.provision.setdefault(str(server), []).append(r.name)
    return plan


def after_apply(desired: list[BlockRecord], saved: list[BlockRecord]) -> list[BlockRecord]:
    """What is saved once a plan is applied: the desired blocks, and the saved ones the file does not name."""
    names = {(r.kind, r.name, r.type) for r in desired}
    return [*desired, *(r for r in saved if (r.kind, r.name, r.type) not in names)]
