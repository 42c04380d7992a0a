"""The fleet file (`fleet.yaml`): servers, sites, templates, storage and retention as code.

`load_fleet_file(text, path)` parses and checks a fleet file and returns a `FleetDoc`: the validated
`FleetFile` model and the line of every value in it. Every refusal is a `FleetFileError` listing each
problem as `fleet.yaml:LINE: where: what to fix`, found before anything reads a block or opens a
connection. The pydantic models here (extra keys forbidden) are the file's whole grammar; the JSON Schema
the project ships (`fleet.schema.json` beside this module) is generated from them by `json_schema()`.

Secrets are never values in the file: a server's private key is a `key_file` (a path on the control
machine) or a `key_secret` (the name of a Prefect Secret block holding the key text); a storage block's or
a site's secret field takes `{secret: BLOCK}` or `{file: PATH}`.

Alert policies do not exist yet (issue 13): an `alerts` key is refused, saying so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model, field_validator, \
    model_validator

from blocks.backup import BackupRetention
from blocks.server import validate_address, validate_user
from blocks.site import WordPressSite
from blocks.storage import AzureBlobStorage, GCSStorage, LocalStorage, S3Storage
from pressfleet import validate
from pressfleet.ssh import remote
from pressfleet.validate import InvalidInput

SCHEMA_PATH = Path(__file__).with_name("fleet.schema.json")
ALERTS_NOT_YET = ("alert policies do not exist yet (issue 13): remove the `alerts` key; "
                  "until then pressfleet has no alerting to configure")

# Prefect block names: lower-case letters, digits and dashes (what the UI accepts without complaint).
BLOCK_NAME_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
BlockName = Annotated[str, Field(pattern=BLOCK_NAME_RE)]

# WordPressSite fields a site entry does not take as options (its own keys, or set by pressfleet).
SITE_OWN_KEYS = ("name", "domain", "server")
SITE_ENTRY_KEYS = ("domain", "name", "server", "template")


class FleetFileError(InvalidInput):
    """The fleet file was refused; `problems` lists (line, message), the message says what to fix."""

    def __init__(self, path: str, problems: list[tuple[int | None, str]]):
        self.path = path
        self.problems = sorted(problems, key=lambda p: (p[0] or 0, p[1]))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}:{line}: {msg}" if line else f"{self.path}: {msg}" for line, msg in self.problems]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class SecretRef(_Strict):
    """A secret by reference: a Prefect Secret block's name, or a file on the control machine. Never a value."""

    secret: Optional[BlockName] = Field(None, description="Name of a Prefect Secret block holding the value.")
    file: Optional[str] = Field(None, description="Path of a file on the control machine holding the value.")

    @model_validator(mode="before")
    @classmethod
    def _never_a_value(cls, data):
        if not isinstance(data, dict):
            raise ValueError("secrets are never values in the fleet file: write {secret: BLOCK} (a Prefect Secret "
                             "block's name) or {file: PATH}")
        return data

    @model_validator(mode="after")
    def _one(self) -> "SecretRef":
        if (self.secret is None) == (self.file is None):
            raise ValueError("give exactly one of `secret: BLOCK` or `file: PATH`")
        return self


def _is_secret(annotation) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _options_model(block: type[BaseModel], model_name: str, exclude: tuple[str, ...] = (), optional: bool = True,
                   extra: dict | None = None):
    """A strict model of BLOCK's fields (secrets as SecretRef): the block's own types and checks, each field
    optional (a template or a site sets some of them) unless OPTIONAL is off. Generated, so that a field added
    to a block is a fleet-file key at once, with the same rules."""
    fields: dict[str, Any] = {}
    for name, info in block.model_fields.items():
        if name in exclude:
            continue
        annotation = info.annotation
        desc = info.description or info.title
        if _is_secret(annotation):
            fields[name] = (Optional[SecretRef], Field(None, description=f"{desc} (a reference: secret or file)"))
            continue
        copy = info._copy() if hasattr(info, "_copy") else info
        if optional:
            fields[name] = (Optional[annotation], Field(None, description=desc,
                                                        **_constraints(info)))
            # keep the block's own Annotated checks (BeforeValidator etc.) by validating through the block later
        else:
            fields[name] = (annotation, copy)
    fields.update(extra or {})
    return create_model(model_name, __config__=ConfigDict(extra="forbid", hide_input_in_errors=True), **fields)


def _constraints(info) -> dict:
    """ge/le/pattern/max_length of a block field, so the schema and the first check carry them."""
    out = {}
    for m in info.metadata:
        for attr in ("ge", "le", "gt", "lt", "max_length", "min_length", "pattern"):
            value = getattr(m, attr, None)
            if value is not None:
                out[attr] = value
    return out


# A mail relay is a block of its own (its password a secret), and a Site Template block is the UI's own kind of
# template (the file has `templates`): both are set on the site block in the UI, not in the file yet.
SiteOptions = _options_model(WordPressSite, "SiteOptions", exclude=(*SITE_OWN_KEYS, "mail_relay", "template", "overrides"))


class ServerSpec(_Strict):
    """One server: how to reach it over SSH and which host key it must present."""

    address: str = Field(..., description="Host name or IP address.")
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    key_file: Optional[str] = Field(None, description="Path of the private key file on the control machine.")
    key_secret: Optional[BlockName] = Field(None, description="Name of a Prefect Secret block holding the private key.")
    host_key: Optional[str] = Field(None, description="The pinned host key, as in known_hosts: 'ssh-ed25519 AAAA...'.")
    trust_on_first_use: bool = Field(False, description="No host key given: pin the one presented on first contact.")
    ssh_group: Optional[str] = None
    ssh_admins: Optional[list[str]] = None
    ssh_allow_groups: Optional[list[str]] = None

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, v):
        return validate_address(v.strip() if isinstance(v, str) else v)

    @field_validator("user", "ssh_group", mode="before")
    @classmethod
    def _user(cls, v):
        return v if v is None else validate_user(v)

    @field_validator("ssh_admins", "ssh_allow_groups", mode="before")
    @classmethod
    def _names(cls, v):
        if v is None:
            return v
        if not isinstance(v, list):
            raise ValueError("a list of account or group names")
        return [validate_user(x) for x in v]

    @field_validator("host_key", mode="before")
    @classmethod
    def _host_key(cls, v):
        if v is None:
            return None
        try:
            return remote.normalize_host_key(v)
        except remote.InvalidHostKey as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_key_one_trust(self) -> "ServerSpec":
        if (self.key_file is None) == (self.key_secret is None):
            raise ValueError("give exactly one of key_file (a path) or key_secret (a Secret block's name)")
        if not self.host_key and not self.trust_on_first_use:
            raise ValueError("give the server's host_key ('ssh-ed25519 AAAA...'), or trust_on_first_use: true")
        return self


SiteSpec = _options_model(
    WordPressSite, "SiteSpec", exclude=SITE_OWN_KEYS,
    extra={
        "domain": (str, Field(..., description="The site's domain, e.g. www.example.com.")),
        "name": (Optional[str], Field(None, description="Site name (default: the saved one for this domain, "
                                                         "else derived from the domain).")),
        "server": (str, Field(..., description="A server of this file's `servers`.")),
        "template": (Optional[str], Field(None, description="A template of this file's `templates`.")),
    },
)


def _storage_model(block: type[BaseModel], type_name: str):
    return _options_model(block, f"{block.__name__}Spec", optional=False,
                          extra={"type": (Literal[type_name], Field(..., description="The storage kind."))})


STORAGE_TYPES: dict[str, type[BaseModel]] = {
    "local": LocalStorage, "s3": S3Storage, "gcs": GCSStorage, "azure": AzureBlobStorage}
StorageSpecs = {t: _storage_model(b, t) for t, b in STORAGE_TYPES.items()}
StorageSpec = Annotated[Union[tuple(StorageSpecs.values())], Field(discriminator="type")]
RetentionSpec = _options_model(BackupRetention, "RetentionSpec", optional=False)


class FleetFile(_Strict):
    """The whole fleet: servers, templates, sites, storage, retention policies."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, title="pressfleet fleet file")

    version: Literal[1] = 1
    servers: dict[BlockName, ServerSpec] = Field(default_factory=dict, description="Server blocks, by block name.")
    templates: dict[str, SiteOptions] = Field(default_factory=dict,
                                              description="Named sets of site options a site refers to.")
    sites: list[SiteSpec] = Field(default_factory=list)
    storage: dict[BlockName, StorageSpec] = Field(default_factory=dict, description="Storage blocks, by block name.")
    retention: dict[BlockName, RetentionSpec] = Field(default_factory=dict,
                                                      description="Backup Retention blocks, by block name.")


def json_schema() -> dict:
    """The JSON Schema of the fleet file, as shipped in fleet.schema.json."""
    schema = FleetFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pressfleet.invalid/fleet.schema.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


# --- lines ------------------------------------------------------------------------------------------------


def _child(node: yaml.Node | None, part) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(key node, value node) of PART inside NODE."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                return k, v
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None, None


def line_of(root: yaml.Node | None, loc: tuple, key: bool = False) -> int | None:
    """The 1-based line of the value at LOC (a pydantic error location), or of the nearest enclosing value
    found; KEY: the key's own line (for a key that should not be there)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        k, v = _child(node, part)
        if v is None:
            break
        node = v
        line = ((k if key and k is not None else v).start_mark.line + 1)
    return line


def _duplicate_keys(node: yaml.Node | None, path: tuple = ()) -> list[tuple[int, str]]:
    """Keys given twice in one mapping: YAML loaders keep the last silently, pressfleet refuses."""
    out = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            if name is not None:
                if name in seen:
                    where = ".".join(str(p) for p in (*path, name))
                    out.append((k.start_mark.line + 1, f"{where}: given twice (first on line {seen[name]}); "
                                                       "keep one"))
                else:
                    seen[name] = k.start_mark.line + 1
            out += _duplicate_keys(v, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += _duplicate_keys(v, (*path, i))
    return out


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


def _message(err: dict) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in StorageSpecs))  # drop union tags
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        if loc == ("alerts",):
            return f"alerts: {ALERTS_NOT_YET}"
        return f"{_where(loc)}: unknown key {loc[-1]!r}; remove it or check its spelling (see fleet.schema.json)"
    if kind == "missing":
        return f"{_where(loc)}: missing; add it"
    msg = msg.removeprefix("Value error, ")
    return f"{_where(loc)}: {msg}"


@dataclass
class FleetDoc:
    """A checked fleet file: the model and where each value is in the text."""

    path: str
    fleet: FleetFile
    root: yaml.Node | None = field(repr=False, default=None)

    def line(self, *loc) -> int | None:
        return line_of(self.root, loc)

    def error(self, problems: list[tuple[tuple, str]]) -> FleetFileError:
        """A FleetFileError for problems given by location: ((loc...), message)."""
        return FleetFileError(self.path, [(self.line(*loc), msg) for loc, msg in problems])


def _loc(err: dict) -> tuple:
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and p in StorageSpecs))


def load_fleet_file(text: str, path: str = "fleet.yaml") -> FleetDoc:
    """Parse and check a fleet file; raises FleetFileError naming each problem's line. Reads nothing else."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise FleetFileError(path, [((mark.line + 1) if mark else None,
                                     f"not valid YAML: {getattr(exc, 'problem', None) or exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FleetFileError(path, [(1, "a fleet file is a mapping (servers:, sites:, ...), not a list or text")])
    problems = _duplicate_keys(root)
    try:
        fleet = FleetFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _loc(err)
            problems.append((line_of(root, loc, key=err["type"] == "extra_forbidden"), _message(err)))
        raise FleetFileError(path, problems) from None
    doc = FleetDoc(path, fleet, root)
    problems += [(doc.line(*loc), msg) for loc, msg in cross_checks(fleet)]
    if problems:
        raise FleetFileError(path, problems)
    return doc


def load_fleet_path(path: str | Path) -> FleetDoc:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise FleetFileError(str(path), [(None, f"cannot read the fleet file: {exc.strerror}")]) from None
    return load_fleet_file(text, str(path))


# --- what one file says about itself (pure) ---------------------------------------------------------------


def site_options(fleet: FleetFile, index: int) -> tuple[dict, dict[str, tuple]]:
    """The WordPressSite options of site INDEX: its template's, then its own (set keys only), and for each
    option the location it came from (for lines)."""
    spec = fleet.sites[index]
    merged: dict[str, Any] = {}
    origin: dict[str, tuple] = {}
    if spec.template and spec.template in fleet.templates:
        tpl = fleet.templates[spec.template]
        for k in tpl.model_fields_set:
            merged[k] = getattr(tpl, k)
            origin[k] = ("templates", spec.template, k)
    for k in spec.model_fields_set - set(SITE_ENTRY_KEYS):
        merged[k] = getattr(spec, k)
        origin[k] = ("sites", index, k)
    return merged, origin


def _domain_or_none(text: str) -> str | None:
    try:
        return validate.domain(text)
    except InvalidInput:
        return None


def cross_checks(fleet: FleetFile) -> list[tuple[tuple, str]]:
    """What the model alone cannot see: references between entries, a site twice, a domain on two sites, two
    servers at one address. Returns (location, message) pairs; empty when the file is coherent."""
    out: list[tuple[tuple, str]] = []
    names: dict[str, int] = {}
    domains: dict[str, int] = {}
    for i, s in enumerate(fleet.sites):
        if s.server not in fleet.servers:
            known = ", ".join(sorted(fleet.servers)) or "none"
            out.append((("sites", i, "server"), f"sites[{i}].server: {s.server!r} is not a server of this file "
                                                f"(servers: {known}); add it under servers: or fix the name"))
        if s.template is not None and s.template not in fleet.templates:
            known = ", ".join(sorted(fleet.templates)) or "none"
            out.append((("sites", i, "template"), f"sites[{i}].template: no template {s.template!r} "
                                                  f"(templates: {known})"))
        domain = _domain_or_none(s.domain)
        if domain is None:
            try:
                validate.domain(s.domain)
            except InvalidInput as exc:
                out.append((("sites", i, "domain"), f"sites[{i}].domain: {exc}"))
            continue
        if s.name is not None:
            try:
                validate.site_name(s.name)
            except InvalidInput as exc:
                out.append((("sites", i, "name"), f"sites[{i}].name: {exc}"))
        options, origin = site_options(fleet, i)
        held = [domain, *[a for a in (options.get("aliases") or []) if isinstance(a, str)]]
        if domain in domains and fleet.sites[domains[domain]].name == s.name:
            out.append((("sites", i, "domain"), f"sites[{i}]: duplicate site: {domain} is already sites"
                                                f"[{domains[domain]}] (line of the first); remove one"))
        else:
            for d in held:
                if d in domains:
                    out.append((("sites", i, "domain"), f"sites[{i}]: the domain {d} is on two sites (sites"
                                                        f"[{domains[d]}] and sites[{i}]); a domain belongs to one site"))
            for d in held:
                domains.setdefault(d, i)
        if s.name is not None:
            if s.name in names:
                out.append((("sites", i, "name"), f"sites[{i}].name: duplicate site: the name {s.name!r} is "
                                                  f"already sites[{names[s.name]}]; give each site its own name"))
            names.setdefault(s.name, i)
        # every option through the block's own checks (PHP version, CSP, URLs, ...), at the line it came from
        problems = site_block_errors(options, domain, s.name or "x_check")
        for field_name, msg in problems:
            loc = origin.get(field_name, ("sites", i, "domain"))
            out.append((loc, f"{_where(loc)}: {msg}"))
    seen: dict[tuple[str, int], str] = {}
    for name, srv in fleet.servers.items():
        key = (srv.address, srv.port)
        if key in seen:
            out.append((("servers", name, "address"), f"servers.{name}: {srv.address}:{srv.port} is already server "
                                                      f"{seen[key]!r}; one server, one entry"))
        seen.setdefault(key, name)
    return out


def site_block_errors(options: dict, domain: str, name: str) -> list[tuple[str, str]]:
    """(field, message) for each option the WordPressSite block refuses; secrets are stand-ins here."""
    fields = {k: v for k, v in options.items() if not isinstance(v, SecretRef)}
    if isinstance(options.get("certificate_key"), SecretRef):
        fields["certificate_key"] = "stand-in"
    fields.setdefault("admin_email", f"admin@{domain}")
    try:
        WordPressSite(name=name, domain=domain, **fields)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = err["loc"]
            out.append((str(loc[0]) if loc else "", err["msg"].removeprefix("Value error, ")))
        return out
    except ValueError as exc:
        return [("", str(exc))]
    return []


def secret_refs(fleet: FleetFile) -> list[tuple[tuple, str, SecretRef]]:
    """Every secret reference in the file: (location, what it is for, reference)."""
    out: list[tuple[tuple, str, SecretRef]] = []
    for name, srv in fleet.servers.items():
        if srv.key_file is not None:
            out.append((("servers", name, "key_file"), f"server {name}'s private key", SecretRef(file=srv.key_file)))
        else:
            out.append((("servers", name, "key_secret"), f"server {name}'s private key",
                        SecretRef(secret=srv.key_secret)))
    for name, st in fleet.storage.items():
        for k in type(st).model_fields:
            v = getattr(st, k)
            if isinstance(v, SecretRef):
                out.append((("storage", name, k), f"storage {name}'s {k}", v))
    for kind, entries in (("templates", fleet.templates), ("sites", dict(enumerate(fleet.sites)))):
        for key, spec in entries.items():
            v = getattr(spec, "certificate_key", None)
            if isinstance(v, SecretRef):
                out.append(((kind, key, "certificate_key"), f"{kind}[{key}]'s certificate key", v))
    return out


SECRET_NAME_RE = re.compile(BLOCK_NAME_RE)
