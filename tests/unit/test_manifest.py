"""The backup manifest: round-trip, a stable digest, and clear mismatch messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pressfleet.backup.manifest import BackupManifest, ManifestPart

pytestmark = pytest.mark.unit

SHA_DB = "a" * 64
SHA_FILES = "b" * 64
START = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def manifest(**over) -> BackupManifest:
    fields = dict(
        site="shop.example.org",
        backup_id="20240501T020000Z",
        kind="full",
        started_at=START,
        ended_at=START + timedelta(minutes=3),
        wordpress_version="6.5.3",
        parts=[
            ManifestPart(name="database", key="shop/20240501T020000Z/db.sql.zst", sha256=SHA_DB, size=1234),
            ManifestPart(
                name="wp-content", key="shop/20240501T020000Z/wp-content.tar.zst", sha256=SHA_FILES, size=99,
                encrypted=True,
            ),
        ],
        table_rows={"wp_posts": 120, "wp_options": 300},
    )
    fields.update(over)
    return BackupManifest(**fields)


def test_json_round_trip():
    m = manifest()
    back = BackupManifest.from_json(m.to_json())
    assert back == m
    assert back.to_json() == m.to_json()
    assert back.manifest_sha256() == m.manifest_sha256()
    assert BackupManifest.from_json(m.to_json().encode()) == m


def test_incremental_round_trip_keeps_the_parent():
    m = manifest(kind="incremental", parent_id="20240430T020000Z")
    assert BackupManifest.from_json(m.to_json()).parent_id == "20240430T020000Z"


def test_digest_is_stable_and_ignores_construction_order():
    m = manifest()
    digest = m.manifest_sha256()
    assert len(digest) == 64 and digest == m.manifest_sha256()
    reordered = manifest(parts=list(reversed(m.parts)), table_rows={"wp_options": 300, "wp_posts": 120})
    assert reordered.manifest_sha256() == digest
    paris = timezone(timedelta(hours=2))
    end = START + timedelta(minutes=3)
    same_instant = manifest(started_at=START.astimezone(paris), ended_at=end.astimezone(paris))
    assert same_instant.manifest_sha256() == digest
    upper = manifest(parts=[ManifestPart(**{**p.model_dump(), "sha256": p.sha256.upper()}) for p in m.parts])
    assert upper.manifest_sha256() == digest


def test_digest_changes_when_the_content_changes():
    digest = manifest().manifest_sha256()
    assert manifest(wordpress_version="6.5.4").manifest_sha256() != digest
    assert manifest(table_rows={"wp_posts": 121, "wp_options": 300}).manifest_sha256() != digest


def test_sha256_is_lower_cased_on_input():
    part = ManifestPart(name="db", key="k", sha256="A" * 64, size=1)
    assert part.sha256 == "a" * 64


def test_verify_part_matches():
    assert manifest().verify_part("database", SHA_DB, 1234) is None
    assert manifest().verify_part("database", SHA_DB.upper(), 1234) is None


def test_verify_part_names_the_part_and_what_differs():
    m = manifest()
    msg = m.verify_part("database", "c" * 64, 1234)
    assert msg == (
        "part 'database' (shop/20240501T020000Z/db.sql.zst) of backup '20240501T020000Z' of shop.example.org "
        f"does not match: sha256 expected {SHA_DB}, got {'c' * 64}"
    )
    msg = m.verify_part("wp-content", SHA_FILES, 98)
    assert "part 'wp-content'" in msg and "size expected 99 bytes, got 98" in msg and "sha256" not in msg
    msg = m.verify_part("database", "c" * 64, 1)
    assert "sha256 expected" in msg and "size expected 1234 bytes, got 1" in msg


def test_verify_part_unknown_name():
    msg = manifest().verify_part("uploads", SHA_DB, 1)
    assert msg == (
        "part 'uploads' is not in the manifest of backup '20240501T020000Z' of shop.example.org "
        "(parts: database, wp-content)"
    )


def test_as_record_feeds_retention():
    r = manifest(kind="incremental", parent_id="p").as_record(verified=True)
    assert (r.id, r.taken_at, r.kind, r.parent, r.verified) == ("20240501T020000Z", START, "incremental", "p", True)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"kind": "incremental"}, "has no parent_id"),
        ({"parent_id": "x"}, "full backup '20240501T020000Z' has a parent_id"),
        ({"ended_at": START - timedelta(seconds=1)}, "ends .* before it starts"),
        ({"started_at": datetime(2024, 5, 1)}, "no time zone"),
        ({"table_rows": {"wp_posts": -1}}, "greater than or equal to 0"),
        ({"parts": [ManifestPart(name="db", key="a", sha256=SHA_DB, size=1)] * 2}, "'db' appears more than once"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_manifests_are_refused(over, message):
    with pytest.raises(ValidationError, match=message):
        manifest(**over)


@pytest.mark.parametrize("sha", ["", "a" * 63, "g" * 64, "a" * 65])
def test_bad_part_sha_is_refused(sha):
    with pytest.raises(ValidationError):
        ManifestPart(name="db", key="k", sha256=sha, size=1)


def test_negative_part_size_is_refused():
    with pytest.raises(ValidationError):
        ManifestPart(name="db", key="k", sha256=SHA_DB, size=-1)


parts = st.lists(
    st.builds(
        ManifestPart,
        name=st.text(min_size=1, max_size=12),
        key=st.text(min_size=1, max_size=30),
        sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
        size=st.integers(min_value=0, max_value=2**50),
        compressed=st.booleans(),
        encrypted=st.booleans(),
    ),
    max_size=6,
    unique_by=lambda p: p.name,
)


@settings(max_examples=60, deadline=None)
@given(parts, st.dictionaries(st.text(min_size=1, max_size=20), st.integers(0, 10**9), max_size=8), st.data())
def test_round_trip_and_digest_hold_for_any_content(ps, rows, data):
    m = manifest(parts=ps, table_rows=rows, site=data.draw(st.text(min_size=1, max_size=20)))
    back = BackupManifest.from_json(m.to_json())
    assert back == m
    assert back.manifest_sha256() == m.manifest_sha256()
    shuffled = manifest(parts=data.draw(st.permutations(ps)), table_rows=dict(reversed(rows.items())), site=m.site)
    assert shuffled.manifest_sha256() == m.manifest_sha256()
    json.loads(m.canonical_json())
    for p in ps:
        assert m.verify_part(p.name, p.sha256, p.size) is None


def test_format_is_written_and_checked_and_the_mac_is_not_part_of_the_digest():
    from pressfleet.backup.manifest import FORMAT, NewerFormat

    m = manifest()
    assert m.format == FORMAT == 2 and json.loads(m.to_json())["format"] == 2
    assert m.model_copy(update={"mac": "f" * 64}).manifest_sha256() == m.manifest_sha256()
    assert manifest(parent_sha256="c" * 64).manifest_sha256() != m.manifest_sha256()  # the parent link counts
    old = json.loads(m.to_json())
    del old["format"], old["mac"], old["parent_sha256"]
    assert BackupManifest.from_json(json.dumps(old)).format == 1  # what older pressfleet wrote
    with pytest.raises(NewerFormat, match=r"written by a newer pressfleet \(format 7\); this one reads up to 2"):
        BackupManifest.from_json(json.dumps({**old, "format": 7, "new_field": 1}))
    with pytest.raises(ValueError, match="not JSON"):
        BackupManifest.from_json("{")
