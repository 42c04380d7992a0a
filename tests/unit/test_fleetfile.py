"""The fleet file: every refusal names its line and what to fix; the shipped schema is the model's; the plan is a
pure function (export then apply has nothing to do; every differing field is listed; collisions refuse)."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pressfleet.fleet import fleetblocks
from pressfleet.fleet.fleetfile import SCHEMA_PATH, FleetFileError, json_schema, load_fleet_file
from pressfleet.fleet.fleetplan import BlockRecord, after_apply, plan_fleet

pytestmark = pytest.mark.unit

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

GOOD = f"""\
version: 1
servers:
  web1:
    address: 10.0.0.5
    key_file: KEYFILE
    host_key: "{HOST_KEY}"
  web2:
    address: 10.0.0.6
    key_secret: web2-key
    trust_on_first_use: true
templates:
  lab:
    tls_mode: self-signed
    page_cache_ttl_s: 600
storage:
  local:
    type: local
    path: /srv/backups
  s3main:
    type: s3
    bucket: acme-wp-backups
    access_key_id: AKIAIOSFODNN7EXAMPLE
    secret_access_key: {{secret: s3-secret}}
retention:
  default:
    keep_last: 3
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6
    keep_yearly: 1
sites:
  - domain: one.example.com
    server: web1
    template: lab
  - domain: two.example.com
    name: two
    server: web2
    admin_email: ops@example.com
"""


def refused(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(FleetFileError) as info:
        load_fleet_file(textwrap.dedent(text), "fleet.yaml")
    return info.value.problems


def test_a_good_file_loads_and_templates_merge_under_the_site():
    doc = load_fleet_file(GOOD)
    assert sorted(doc.fleet.servers) == ["web1", "web2"]
    from pressfleet.fleet.fleetfile import site_options

    options, origin = site_options(doc.fleet, 0)
    assert options == {"tls_mode": "self-signed", "page_cache_ttl_s": 600}
    assert origin["tls_mode"] == ("templates", "lab", "tls_mode")
    assert doc.line("sites", 1, "name") == 36


@pytest.mark.parametrize("text, line, words", [
    # an unknown key, at the key's own line
    ("servers:\n  web1:\n    address: 10.0.0.5\n    key_file: /k\n    host_key: '" + HOST_KEY + "'\n"
     "    colour: red\n", 6, ["unknown key 'colour'", "remove it"]),
    ("sites: []\nsitez: []\n", 2, ["unknown key 'sitez'"]),
    # a duplicate site (same domain twice); a domain on two sites: below
    (GOOD + "  - domain: one.example.com\n    server: web1\n", 39, ["duplicate site", "one.example.com"]),
    # alert policies do not exist yet
    ("alerts:\n  disk: 90\n", 1, ["issue 13"]),
    # a secret as a value
    ("storage:\n  s:\n    type: s3\n    bucket: acme-backups\n    access_key_id: AKIAEXAMPLE1\n"
     "    secret_access_key: hunter2hunter2\n", 6, ["never values", "{secret: BLOCK}"]),
    # a server given twice (YAML would keep the last silently)
    ("servers:\n  web1:\n    address: 10.0.0.5\n    key_file: /k\n    trust_on_first_use: true\n"
     "  web1:\n    address: 10.0.0.6\n    key_file: /k\n    trust_on_first_use: true\n", 6, ["given twice", "line 2"]),
    # a site naming a server the file lacks; an unknown template
    ("servers: {}\nsites:\n  - domain: a.example.com\n    server: nowhere\n", 4, ["'nowhere' is not a server"]),
    # neither host key nor trust on first use; both a key file and a secret
    ("servers:\n  web1:\n    address: 10.0.0.5\n    key_file: /k\n", 3, ["host_key", "trust_on_first_use"]),
    ("servers:\n  web1:\n    address: 10.0.0.5\n    key_file: /k\n    key_secret: k\n    trust_on_first_use: true\n",
     3, ["exactly one of key_file"]),
    # a bad value checked by the block's own rules, at the template line it came from
    (GOOD.replace("page_cache_ttl_s: 600", "php_version: '7.4'"), 14, ["PHP", "8.2"]),
    # a bad address; not YAML at all
    ("servers:\n  web1:\n    address: 'a;rm -rf /'\n    key_file: /k\n    trust_on_first_use: true\n", 3,
     ["not a host name"]),
    ("servers: [\n", 2, ["not valid YAML"]),
])
def test_every_refusal_names_its_line_and_what_to_fix(text, line, words):
    problems = refused(text)
    assert any(ln == line and all(w in msg for w in words) for ln, msg in problems), problems


def test_a_domain_on_two_sites_is_refused_at_the_second():
    text = GOOD + "  - domain: two.example.com\n    name: other\n    server: web1\n"
    problems = refused(text)
    assert any(ln == 39 and "two.example.com is on two sites" in msg for ln, msg in problems), problems
    alias = GOOD.replace("    template: lab\n", "    template: lab\n    aliases: [two.example.com]\n", 1)
    assert any("two.example.com is on two sites" in msg for _, msg in refused(alias))


def test_two_servers_at_one_address_and_port_are_refused():
    text = GOOD.replace("address: 10.0.0.6", "address: 10.0.0.5")
    problems = refused(text)
    assert any(ln == 8 and "already server 'web1'" in msg for ln, msg in problems), problems


def test_the_message_lists_every_problem_with_the_file_name_and_line():
    with pytest.raises(FleetFileError) as info:
        load_fleet_file("sites: []\nextra: 1\nalerts: {}\n", "my/fleet.yaml")
    text = str(info.value)
    assert "my/fleet.yaml:2: extra: unknown key" in text and "my/fleet.yaml:3: alerts:" in text


def test_a_missing_key_file_is_refused_at_its_line(tmp_path):
    doc = load_fleet_file(GOOD.replace("KEYFILE", str(tmp_path / "missing")).replace(
        "key_secret: web2-key", f"key_file: {tmp_path / 'notakey'}"))
    (tmp_path / "notakey").write_text("hello\n")
    doc.fleet.storage.pop("s3main")  # its Secret block would need a Prefect API
    with pytest.raises(FleetFileError) as info:
        fleetblocks.resolve_secrets(doc)
    problems = dict(info.value.problems)
    assert "does not exist: give the right path" in problems[5]
    assert "does not hold an OpenSSH private key" in problems[9]


def test_the_blocks_a_file_describes(tmp_path):
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    doc = load_fleet_file(GOOD.replace("KEYFILE", str(key)).replace("key_secret: web2-key", f"key_file: {key}"))
    doc.fleet.storage.pop("s3main")
    desired = fleetblocks.desired_blocks(doc, fleetblocks.resolve_secrets(doc), saved=[])
    one = desired.sites["site-one-example-com"]
    assert (one.name, one.tls_mode, one.page_cache_ttl_s, one.admin_email) == \
        ("one_example_com", "self-signed", 600, "admin@one.example.com")
    assert desired.site_server == {"site-one-example-com": "web1", "site-two": "web2"}
    records = {(r.kind, r.name): r for r in desired.records()}
    assert records[("server", "web1")].fields["private_key"].startswith("sha256:")  # never the key itself
    assert "abc" not in json.dumps([r.fields for r in records.values()])
    assert records[("site", "site-two")].fields["server"] == "web2"
    assert records[("storage", "local")].type == "local-storage" and records[("storage", "local")].fields["path"] == \
        "/srv/backups"
    assert records[("retention", "default")].fields["keep_last"] == 3
    # nothing to do against itself
    plan = plan_fleet(list(records.values()), list(records.values()))
    assert plan.nothing_to_do and plan.counts()["leave"] == len(records)


def test_the_shipped_schema_is_the_models():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), \
        "pressfleet/fleet/fleet.schema.json is stale: `pressfleet fleet schema > pressfleet/fleet/fleet.schema.json`"
    props = json_schema()["properties"]
    assert set(props) == {"version", "servers", "templates", "sites", "storage", "retention"}
    assert json_schema()["additionalProperties"] is False


# --- the plan, pure ---------------------------------------------------------------------------------------


def server(name, address="10.0.0.1", port=22, **fields):
    return BlockRecord("server", name, "server", {"address": address, "port": port, **fields}, (f"{address}:{port}",))


def site(name, domain, server_name="web1", **fields):
    return BlockRecord("site", name, "wordpress-site", {"domain": domain, "server": server_name, **fields}, (domain,))


def test_changes_are_listed_field_by_field_and_provision_what_changed():
    saved = [server("web1"), server("web2", "10.0.0.2"), site("site-a", "a.test", tls_mode="acme"),
             site("site-b", "b.test", "web2"), site("site-c", "c.test", "web2")]
    desired = [server("web1"), server("web2", "10.0.0.2", user="deploy"), site("site-a", "a.test", tls_mode="self-signed"),
               site("site-b", "b.test", "web2"), site("site-c", "c.test", "web2"), site("site-d", "d.test")]
    plan = plan_fleet(desired, saved)
    ops = {(a.kind, a.name): a for a in plan.actions}
    assert ops[("site", "site-a")].op == "change"
    assert [(c.field, c.file, c.saved) for c in ops[("site", "site-a")].changes] == [("tls_mode", "self-signed", "acme")]
    assert ops[("server", "web2")].changes[0].text() == "user: file 'deploy' / saved None"
    assert ops[("site", "site-d")].op == "create" and ops[("server", "web1")].op == "leave"
    # a changed server provisions all its sites; a changed or new site itself
    assert plan.provision == {"web1": ["site-a", "site-d"], "web2": ["site-b", "site-c"]}
    assert not plan.collisions


def test_secrets_are_compared_by_digest_and_never_shown():
    plan = plan_fleet([server("web1", private_key="sha256:aa")], [server("web1", private_key="sha256:bb")])
    assert plan.actions[0].changes[0].text() == "private_key: a different secret (values not shown)"


def test_identity_collisions_refuse():
    saved = [server("old", "10.0.0.9"), site("site-x", "x.test", "old")]
    plan = plan_fleet([server("new", "10.0.0.9"), site("site-y", "x.test", "new")], saved)
    kinds = sorted((k, n) for k, n, _ in plan.collisions)
    assert kinds == [("server", "new"), ("site", "site-y")]
    assert "saved server block 'old'" in plan.collisions[0][2]
    moved = plan_fleet([server("old", "10.0.0.7")], saved)
    assert moved.collisions and "saved with the address:port 10.0.0.9:22, the file gives 10.0.0.7:22" in \
        moved.collisions[0][2]
    other = plan_fleet([site("site-x", "y.test", "old"), server("old", "10.0.0.9")], saved)
    assert [(k, n) for k, n, _ in other.collisions] == [("site", "site-x")]
    storage = plan_fleet([BlockRecord("storage", "b", "s3-storage", {})], [BlockRecord("storage", "b", "local-storage", {})])
    assert storage.collisions and "rename one" in storage.collisions[0][2]


def test_a_second_saved_name_for_one_address_is_left_when_the_file_uses_the_first():
    """Two saved server blocks at one address (a person saved the host twice): a file naming one of them adds no
    second name, so it is not refused; a third, new name for that address still is."""
    saved = [server("web1", "10.0.0.9"), server("web1-copy", "10.0.0.9"), site("site-x", "x.test", "web1")]
    plan = plan_fleet([server("web1", "10.0.0.9"), site("site-x", "x.test", "web1")], saved)
    assert not plan.collisions and plan.nothing_to_do
    third = plan_fleet([server("web1-new", "10.0.0.9")], saved)
    assert [(k, n) for k, n, _ in third.collisions] == [("server", "web1-new")]


def test_saved_blocks_the_file_does_not_name_are_left():
    plan = plan_fleet([server("web1")], [server("web1"), server("web9", "10.0.0.9")])
    assert plan.not_in_file == [("server", "web9")] and plan.nothing_to_do


names = st.sampled_from(["a", "b", "c", "d"])
values = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["x", "y", "sha256:1", "sha256:2"]))
field_maps = st.dictionaries(st.sampled_from(["f1", "f2", "f3"]), values, max_size=3)


@st.composite
def fleets(draw):
    # identities follow names (a collision is its own test above), so every example checks the properties
    servers = {n: server(f"srv-{n}", f"10.0.0.{ord(n)}", **draw(field_maps)) for n in draw(st.sets(names))}
    hosts = sorted(servers) or [None]
    sites = []
    for i, n in enumerate(sorted(draw(st.sets(names)))):
        host = draw(st.sampled_from(hosts))
        sites.append(site(f"site-{n}", f"{n}.test", f"srv-{host}" if host else "srv-none", **draw(field_maps)))
    return list(servers.values()) + sites


@settings(max_examples=100, deadline=None)
@given(fleets(), fleets())
def test_after_an_apply_the_same_file_has_nothing_to_do(desired, saved):
    plan = plan_fleet(desired, saved)
    assert not plan.collisions
    again = plan_fleet(desired, after_apply(desired, saved))
    assert again.nothing_to_do, again.lines()
    # every changed field is listed, and only those
    saved_by = {(r.kind, r.name): r for r in saved}
    for a in plan.actions:
        if a.op == "change":
            old, new = saved_by[(a.kind, a.name)].fields, next(r for r in desired if (r.kind, r.name) == (a.kind, a.name)).fields
            assert {c.field for c in a.changes} == {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    # the plan is a pure function of its inputs
    assert plan_fleet(desired, saved) == plan


def test_the_example_fleet_file_loads():
    from pressfleet.fleet.fleetfile import load_fleet_path
    from pressfleet.paths import ROOT

    doc = load_fleet_path(ROOT / "examples" / "fleet.yaml")
    assert [s.domain for s in doc.fleet.sites] == ["www.example.com", "shop.example.com", "blog.example.org"]
