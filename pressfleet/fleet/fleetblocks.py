"""The fleet file against the saved blocks: the blocks a file describes, the records the plan compares, saving
them, and the file that describes what is saved (export).

Secrets are read from what the file references (a key file, a Secret block) only to build the blocks; the
records carry their sha256 digest. Which reference a saved secret came from is kept in the Prefect Variable
`pressfleet-fleet-sources` (digest and reference, never a value), so that an export writes the same
`key_file` again; a secret pasted in the UI is exported as a reference to a Secret block pressfleet makes
for it (`pressfleet-fleet-...`), never as a value.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from pressfleet.fleet.fleetfile import (
    SITE_ENTRY_KEYS, STORAGE_TYPES, FleetDoc, FleetFile, FleetFileError, SecretRef, secret_refs, site_options,
)
from pressfleet.fleet.fleetplan import BlockRecord
from pressfleet.fleet.saved import saved_block_names
from pressfleet.fleet.sites import claim_site_name, saved_sites, site_block_name
from pressfleet.validate import InvalidInput

SOURCES_VARIABLE = "pressfleet-fleet-sources"  # a Prefect Variable: digests and references, no value
PENDING_VARIABLE = "pressfleet-fleet-pending"
STORAGE_SLUGS = {"local": "local-storage", "s3": "s3-storage", "gcs": "gcs-storage", "azure": "azure-blob-storage"}
SLUG_TYPES = {v: k for k, v in STORAGE_SLUGS.items()}


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A block field's value as the plan compares it: secrets as digests, blocks by name, tuples as lists."""
    from prefect.blocks.core import Block

    from blocks.server import Server

    if isinstance(value, SecretStr):
        return digest(value.get_secret_value())
    if isinstance(value, Server):
        return server_name_of(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel) and not isinstance(value, Block):  # a plain model field: an update policy
        return value.model_dump(mode="json")
    return value


_SAVED_SERVERS: dict[tuple[str, int], str] = {}


def server_name_of(server) -> str:
    """The saved Server block a site's server is: its name when it is a reference, else the saved server at
    the same address and port."""
    name = getattr(server, "_block_document_name", None)
    if name and not getattr(server, "_is_anonymous", False):
        return name
    return _SAVED_SERVERS.get((server.address, server.port), f"(unsaved server {server.address}:{server.port})")


def record_of(kind: str, name: str, block) -> BlockRecord:
    fields = {k: _plain(getattr(block, k)) for k in type(block).model_fields}
    identity: tuple[str, ...] = ()
    if kind == "server":
        identity = (f"{block.address}:{block.port}",)
    elif kind == "site":
        identity = (block.domain, *block.aliases)
    return BlockRecord(kind, name, block.get_block_type_slug(), fields, identity)


# --- secrets ----------------------------------------------------------------------------------------------


def read_ref(ref: SecretRef) -> str:
    """The value a reference points at; InvalidInput (one sentence) when it is missing."""
    if ref.file is not None:
        path = Path(os.path.expanduser(ref.file))
        try:
            return path.read_text()
        except FileNotFoundError:
            raise InvalidInput(f"the file {ref.file} does not exist: give the right path") from None
        except OSError as exc:
            raise InvalidInput(f"the file {ref.file} cannot be read ({exc.strerror})") from None
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(ref.secret).get()
    except ValueError:
        raise InvalidInput(f"there is no Secret block {ref.secret!r}: create it (Prefect UI, Blocks) "
                           "or fix the name") from None
    if not isinstance(value, str):
        raise InvalidInput(f"the Secret block {ref.secret!r} must hold text")
    return value


def resolve_secrets(doc: FleetDoc) -> dict[tuple, str]:
    """Every referenced secret's value by its location in the file; FleetFileError naming each missing one."""
    values, problems = {}, []
    for loc, what, ref in secret_refs(doc.fleet):
        try:
            value = read_ref(ref)
            if loc[0] == "servers" and "PRIVATE KEY-----" not in value:
                raise InvalidInput(f"{ref.file or ref.secret} does not hold an OpenSSH private key "
                                   "(-----BEGIN ... PRIVATE KEY-----)")
            values[loc] = value
        except InvalidInput as exc:
            problems.append((loc, f"{'.'.join(str(p) for p in loc)}: {what}: {exc}"))
    if problems:
        raise doc.error(problems)
    return values


# --- the blocks a file describes --------------------------------------------------------------------------


@dataclass
class Desired:
    """The blocks the file describes (unsaved), by kind and name, and where each came from."""

    servers: dict[str, Any] = field(default_factory=dict)
    sites: dict[str, Any] = field(default_factory=dict)  # site block name -> WordPressSite
    site_server: dict[str, str] = field(default_factory=dict)  # site block name -> server block name
    site_index: dict[str, int] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict] = field(default_factory=dict)  # "kind/name/field" -> {"ref":..., "sha256":...}

    def records(self) -> list[BlockRecord]:
        out = [record_of("server", n, b) for n, b in self.servers.items()]
        for n, b in self.sites.items():
            r = record_of("site", n, b)
            out.append(BlockRecord(r.kind, r.name, r.type, {**r.fields, "server": self.site_server[n]}, r.identity))
        out += [record_of("storage", n, b) for n, b in self.storage.items()]
        out += [record_of("retention", n, b) for n, b in self.retention.items()]
        return out


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    return [(str(e["loc"][0]) if e["loc"] else "", e["msg"].removeprefix("Value error, ")) for e in exc.errors()]


def _source(ref: SecretRef, value: str) -> dict:
    return {"ref": ref.model_dump(exclude_none=True), "sha256": digest(value)}


def desired_blocks(doc: FleetDoc, secrets: dict[tuple, str], saved: list | None = None,
                   saved_hosts: dict[str, str] | None = None) -> Desired:
    """The unsaved blocks the file describes, secrets filled in. Site names for sites without one: the saved
    site of that domain, else derived (`claim_site_name`); a name or domain that collides with a saved site is
    refused. SAVED_HOSTS: a saved server's pinned key by name (kept when the file trusts on first use)."""
    from blocks.backup import BackupRetention
    from blocks.server import Server
    from blocks.site import WordPressSite

    fleet: FleetFile = doc.fleet
    out, problems = Desired(), []
    for name, spec in fleet.servers.items():
        key_loc = ("servers", name, "key_file" if spec.key_file is not None else "key_secret")
        host_key = spec.host_key or (saved_hosts or {}).get(name)
        fields = spec.model_dump(exclude={"key_file", "key_secret"}, exclude_none=True)
        fields["host_key"] = host_key
        try:
            out.servers[name] = Server(private_key=secrets[key_loc], **fields)
        except ValidationError as exc:
            problems += [(("servers", name, f), f"servers.{name}.{f}: {m}") for f, m in _errors(exc)]
            continue
        ref = SecretRef(file=spec.key_file) if spec.key_file is not None else SecretRef(secret=spec.key_secret)
        out.sources[f"server/{name}/private_key"] = _source(ref, secrets[key_loc])
    for i, spec in enumerate(fleet.sites):
        try:
            site_name, block = claim_site_name(spec.domain, spec.name, saved or [])
        except InvalidInput as exc:
            problems.append((("sites", i, "name" if spec.name else "domain"), f"sites[{i}]: {exc}"))
            continue
        options, origin = site_options(fleet, i)
        for k, v in list(options.items()):
            if isinstance(v, SecretRef):
                value = secrets[origin[k]]
                options[k] = value
                out.sources[f"site/{block}/{k}"] = _source(v, value)
        options.setdefault("admin_email", f"admin@{spec.domain}")
        server = out.servers.get(spec.server)
        try:
            out.sites[block] = WordPressSite(name=site_name, domain=spec.domain, server=server, **options)
        except ValidationError as exc:
            problems += [(origin.get(f, ("sites", i)), f"sites[{i}].{f}: {m}") for f, m in _errors(exc)]
            continue
        out.site_server[block] = spec.server
        out.site_index[block] = i
    for name, spec in fleet.storage.items():
        cls = STORAGE_TYPES[spec.type]
        fields = {}
        for k in cls.model_fields:
            v = getattr(spec, k, None)
            if isinstance(v, SecretRef):
                fields[k] = secrets[("storage", name, k)]
                out.sources[f"storage/{name}/{k}"] = _source(v, fields[k])
            elif k in spec.model_fields_set or v is not None:
                fields[k] = v
        try:
            out.storage[name] = cls(**fields)
        except ValidationError as exc:
            problems += [(("storage", name, f), f"storage.{name}.{f}: {m}") for f, m in _errors(exc)]
    for name, spec in fleet.retention.items():
        try:
            out.retention[name] = BackupRetention(**spec.model_dump())
        except ValidationError as exc:
            problems += [(("retention", name), f"retention.{name}: {m}") for _, m in _errors(exc)]
    if problems:
        raise doc.error(problems)
    return out


# --- what is saved ----------------------------------------------------------------------------------------


@dataclass
class Saved:
    servers: dict[str, Any] = field(default_factory=dict)
    sites: dict[str, Any] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # blocks that no longer load (named, skipped)

    def records(self) -> list[BlockRecord]:
        out = [record_of("server", n, b) for n, b in self.servers.items()]
        out += [record_of("site", n, b) for n, b in self.sites.items()]
        out += [record_of("storage", n, b) for n, b in self.storage.items()]
        out += [record_of("retention", n, b) for n, b in self.retention.items()]
        return out

    def host_keys(self) -> dict[str, str]:
        return {n: b.host_key for n, b in self.servers.items() if b.host_key}


def _load_all(cls, slug: str, into: dict, unreadable: list) -> None:
    for name in saved_block_names(slug):
        try:
            into[name] = cls.load(name)
        except (ValueError, ValidationError) as exc:
            unreadable.append(f"{slug} {name!r}: {str(exc).splitlines()[0]}")


def read_saved() -> Saved:
    """Every saved Server, WordPress Site, storage and Backup Retention block (secrets included, in memory)."""
    from blocks.backup import BackupRetention
    from blocks.server import Server
    from blocks.site import WordPressSite

    out = Saved()
    _load_all(Server, "server", out.servers, out.unreadable)
    _SAVED_SERVERS.clear()
    _SAVED_SERVERS.update({(b.address, b.port): n for n, b in sorted(out.servers.items(), reverse=True)})
    _load_all(WordPressSite, "wordpress-site", out.sites, out.unreadable)
    for kind, cls in STORAGE_TYPES.items():
        found: dict[str, Any] = {}
        _load_all(cls, STORAGE_SLUGS[kind], found, out.unreadable)
        out.storage.update(found)
    _load_all(BackupRetention, "backup-retention", out.retention, out.unreadable)
    return out


def saved_identity():
    """The saved sites' identities (for naming the file's sites)."""
    return saved_sites()


# --- saving -----------------------------------------------------------------------------------------------


def save_blocks(desired: Desired, names: set[tuple[str, str]]) -> list[str]:
    """Save the blocks NAMES lists ((kind, name) to create or change), servers before the sites that refer to
    them; record where each secret came from. Returns what was saved, as `kind name` lines."""
    from blocks.server import Server

    done = []
    for name, block in desired.servers.items():
        if ("server", name) in names:
            block.save(name, overwrite=True)
            done.append(f"server {name}")
    for name, block in desired.sites.items():
        if ("site", name) in names:
            server = desired.servers[desired.site_server[name]]
            if server._block_document_id is None:  # unchanged, so not saved above: refer to the saved one
                server = Server.load(desired.site_server[name])
            block.server = server
            block.save(name, overwrite=True)
            done.append(f"site {name}")
    for kind, blocks in (("storage", desired.storage), ("retention", desired.retention)):
        for name, block in blocks.items():
            if (kind, name) in names:
                block.save(name, overwrite=True)
                done.append(f"{kind} {name}")
    if desired.sources:
        record_sources(desired.sources)
    return done


def read_sources() -> dict[str, dict]:
    from prefect.variables import Variable

    value = Variable.get(SOURCES_VARIABLE, default=None)
    return value if isinstance(value, dict) else {}


def record_sources(sources: dict[str, dict]) -> None:
    from prefect.variables import Variable

    Variable.set(SOURCES_VARIABLE, {**read_sources(), **sources}, overwrite=True)


def pending_sites() -> list[str]:
    """Site blocks saved by an apply whose provisioning has not succeeded since (a re-run provisions them)."""
    from prefect.variables import Variable

    value = Variable.get(PENDING_VARIABLE, default=None)
    return [str(v) for v in value] if isinstance(value, list) else []


def set_pending(sites: list[str]) -> None:
    from prefect.variables import Variable

    Variable.set(PENDING_VARIABLE, sorted(set(sites)), overwrite=True)


# --- export -----------------------------------------------------------------------------------------------


def _ref_for(key: str, value: str, sources: dict, made: list[str]) -> dict:
    """The reference to write for a saved secret: the one it came from when its digest still matches, else a
    Secret block made for it now (named after the block and field)."""
    known = sources.get(key)
    if known and known.get("sha256") == digest(value):
        return dict(known["ref"])
    from prefect.blocks.system import Secret

    block = "pressfleet-fleet-" + key.replace("/", "-").replace("_", "-").lower()[:60].rstrip("-")
    Secret(value=value).save(block, overwrite=True)
    sources[key] = {"ref": {"secret": block}, "sha256": digest(value)}
    made.append(block)
    return {"secret": block}


def _non_default(block, skip: tuple[str, ...] = ()) -> dict:
    out = {}
    for k, info in type(block).model_fields.items():
        if k in skip:
            continue
        v = getattr(block, k)
        default = info.get_default(call_default_factory=True)
        if isinstance(v, SecretStr) or v != default:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def export_fleet(saved: Saved) -> tuple[dict, list[str]]:
    """The fleet file (as data) describing what is saved, and notes for the person (Secret blocks made to
    reference secrets that had none; servers saved twice under two names). Export then apply has nothing to
    change."""
    sources, made, notes = read_sources(), [], []
    data: dict[str, Any] = {"version": 1, "servers": {}, "sites": [], "storage": {}, "retention": {}}
    for name, b in sorted(saved.servers.items()):
        entry = {"address": b.address}
        ref = _ref_for(f"server/{name}/private_key", b.private_key.get_secret_value(), sources, made)
        entry.update({"key_file": ref["file"]} if "file" in ref else {"key_secret": ref["secret"]})
        entry.update({k: v for k, v in _non_default(b, ("address", "private_key")).items()})
        if not b.host_key and not b.trust_on_first_use:
            entry["trust_on_first_use"] = True  # cannot be described otherwise: say how it will be pinned
        data["servers"][name] = entry
    seen: dict[tuple[str, int], str] = {}
    for name, b in sorted(saved.servers.items()):
        other = seen.setdefault((b.address, b.port), name)
        if other != name:
            notes.append(f"servers {other!r} and {name!r} are both {b.address}:{b.port}: the file is refused until "
                         "one of them is removed (a server is named one way)")
    for name, b in sorted(saved.sites.items(), key=lambda kv: (kv[1].domain, kv[0])):
        if b.server is None:
            continue  # a site with no server is not part of a fleet (provisioning needs one)
        host = server_name_of(b.server)
        if host not in data["servers"]:  # the site holds a server of its own that no saved block is
            host = f"unsaved-{b.server.address.replace('.', '-').replace(':', '-')}-{b.server.port}"[:63]
            if host not in data["servers"]:
                ref = _ref_for(f"server/{host}/private_key", b.server.private_key.get_secret_value(), sources, made)
                data["servers"][host] = {"address": b.server.address, "port": b.server.port, "user": b.server.user,
                                         **({"key_file": ref["file"]} if "file" in ref else {"key_secret": ref["secret"]}),
                                         **({"host_key": b.server.host_key} if b.server.host_key
                                            else {"trust_on_first_use": True})}
                notes.append(f"site {name!r} names a server no saved Server block is: exported as {host!r} "
                             "(an apply saves it and points the site at it)")
        entry: dict[str, Any] = {"domain": b.domain, "name": b.name, "server": host}
        for k, v in _non_default(b, ("name", "domain", "server")).items():
            if isinstance(v, SecretStr):
                v = _ref_for(f"site/{name}/{k}", v.get_secret_value(), sources, made)
            entry[k] = v
        data["sites"].append(entry)
    for name, b in sorted(saved.storage.items()):
        entry = {"type": SLUG_TYPES[b.get_block_type_slug()]}
        for k, v in _non_default(b).items():
            if isinstance(v, SecretStr):
                v = _ref_for(f"storage/{name}/{k}", v.get_secret_value(), sources, made)
            entry[k] = v
        for k, info in type(b).model_fields.items():  # required fields even when equal to a default
            if info.is_required() and k not in entry:
                entry[k] = getattr(b, k)
        data["storage"][name] = entry
    for name, b in sorted(saved.retention.items()):
        data["retention"][name] = {k: getattr(b, k) for k in type(b).model_fields}
    if made:
        record_sources(sources)
    for k in ("servers", "sites", "storage", "retention"):
        if not data[k]:
            del data[k]
    notes += [f"saved a secret as Secret block {b!r} to reference it" for b in made]
    return data, notes


def dump_yaml(data: dict) -> str:
    header = ("# pressfleet fleet file (pressfleet fleet export). Schema: pressfleet/fleet/fleet.schema.json\n"
              "# Secrets are references (key_file, key_secret, {secret: BLOCK}, {file: PATH}), never values.\n")
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


__all__ = ["Desired", "Saved", "desired_blocks", "resolve_secrets", "read_saved", "save_blocks", "export_fleet",
           "dump_yaml", "record_of", "digest", "FleetFileError", "SITE_ENTRY_KEYS", "site_block_name"]
