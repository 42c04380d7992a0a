"""Backups to S3, Google Cloud Storage and Azure Blob Storage (the moto server, gcp-storage-emulator and
Azurite, started by the suite), and a storage outage in the middle of an upload."""

from __future__ import annotations

import time

import pytest

from pressfleet.backup import catalog
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab, in_background, make_site
from tests.storage.conftest import (  # noqa: F401 - fixtures
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    S3_KEY_ID,
    S3_SECRET,
    azurite_emulator,
    emulator_logs,
    gcs_emulator,
    moto_emulator,
    s3_client,
    unique,
)

pytestmark = pytest.mark.lab


def storage_block(backend: str, request):
    from blocks.storage import AzureBlobStorage, GCSStorage, S3Storage

    if backend == "s3":
        emu = request.getfixturevalue("moto_emulator")
        bucket = unique("pb")
        s3_client(emu.url).create_bucket(Bucket=bucket)
        return S3Storage(bucket=bucket, endpoint_url=emu.url, region="us-east-1", access_key_id=S3_KEY_ID,
                         secret_access_key=S3_SECRET, encryption="none")
    if backend == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        emu = request.getfixturevalue("gcs_emulator")
        bucket = unique("pb")
        storage.Client(project="test", credentials=AnonymousCredentials(),
                       client_options={"api_endpoint": emu.url}).create_bucket(bucket)
        return GCSStorage(bucket=bucket, project="test", endpoint=emu.url, encryption="none")
    emu = request.getfixturevalue("azurite_emulator")
    container = unique("pb")
    block = AzureBlobStorage(container=container, account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY,
                             endpoint=f"http://127.0.0.1:{emu.port}/{AZURITE_ACCOUNT}", encryption="none")
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient(account_url=block.endpoint, credential={"account_name": AZURITE_ACCOUNT,
                                                              "account_key": AZURITE_KEY}).create_container(container)
    return block


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_backup_and_restore_test_on_each_cloud(backend, request, provisioned, prefect_harness):
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test

    site = make_site(server=provisioned.server)
    storage = storage_block(backend, request)
    [full] = backup_site(site=site, storage=storage, full=True)
    time.sleep(1.05)
    [inc] = backup_site(site=site, storage=storage)
    assert inc["kind"] == "incremental" and inc["bytes"] < full["bytes"]
    [proof] = restore_test(site=site, storage=storage, scratch=provisioned.server)
    assert proof["verified"] and proof["backup"] == inc["backup"]
    entries = catalog.list_backups(storage.store(), "blog")
    assert [e.verified for e in entries] == [False, True]


def test_storage_outage_during_upload_fails_clearly_and_a_rerun_succeeds(provisioned, prefect_harness, moto_emulator):
    """Storage drops every connection while the files part is being uploaded, and is back by the time the
    client aborts (tests/outage_proxy.py, in front of moto, which keeps its state): the backup fails with a
    clear sentence, the multipart upload is aborted (moto lists none left), nothing is listed, a re-run works."""
    from blocks.storage import S3Storage
    from flows.backup_site import backup_site
    from tests.outage_proxy import OutageProxy

    bucket = unique("outage")
    client = s3_client(moto_emulator.url)
    client.create_bucket(Bucket=bucket)
    proxy = OutageProxy(moto_emulator.port)
    big = "/var/www/blog/htdocs/wp-content/uploads/outage.bin"
    try:
        storage = S3Storage(bucket=bucket, endpoint_url=proxy.url, region="us-east-1", access_key_id=S3_KEY_ID,
                            secret_access_key=S3_SECRET, encryption="none")
        site = make_site(server=provisioned.server)
        with connect_lab(provisioned.host) as conn:
            run(conn, ["sh", "-c", f"head -c 150000000 /dev/urandom > {big}"])
        worker, outcome = in_background(lambda: backup_site(site=site, storage=storage, full=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the files part is being uploaded in parts
            uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            if any("files.tar" in u["Key"] for u in uploads):
                break
            time.sleep(0.05)
        else:
            pytest.fail("never saw the files part being uploaded")
        proxy.cut(until_abort=True)
        worker.join(300)
        assert "error" in outcome, "the backup should fail when storage goes away"
        message = str(outcome["error"])
        assert "files.tar" in message and "could not be reached" in message, message
        assert S3_SECRET not in message and S3_KEY_ID not in message
        assert any(line.startswith("DELETE ") and "files.tar" in line and "uploadId=" in line for line in proxy.refused)
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted once storage was back
        assert catalog.list_backups(storage.store(), "blog") == []  # nothing half-written is listed
        [done] = backup_site(site=site, storage=storage, full=True)  # storage is back (with its state)
        assert [e.manifest.backup_id for e in catalog.list_backups(storage.store(), "blog")] == [done["backup"]]
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    finally:
        proxy.close()
        with connect_lab(provisioned.host) as conn:
            run(conn, ["rm", "-f", big], check=False)


def test_verified_backups_are_copied_to_a_second_cloud_checked_and_restore_tested_from_the_copy(
        request, provisioned, prefect_harness, tmp_path):
    """S3 (moto) to GCS (the emulator), encrypted with a passphrase: the verified backup goes with its chain,
    every object checked; a second run copies nothing; a source object that changed is refused and the target
    lists nothing of it; the copy is restore-tested from GCS alone."""
    from prefect.blocks.system import Secret

    from blocks.backup import BackupCopyPolicy
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.copy_backups import copy_backups
    from flows.restore_test import restore_test

    site = make_site(server=provisioned.server)
    key = Secret(value="c" * 12 + "pressfleet-copy-key-0123456789")
    s3, gcs = storage_block("s3", request), storage_block("gcs", request)
    [full] = backup_site(site=site, storage=s3, encryption_key=key, full=True)
    time.sleep(1.05)
    [inc] = backup_site(site=site, storage=s3, encryption_key=key)
    time.sleep(1.05)
    [unproven] = backup_site(site=site, storage=s3, encryption_key=key)  # newer, never restore-tested: not copied
    restore_test(site=site, storage=s3, scratch=provisioned.server, encryption_key=key, backup_id=inc["backup"])
    policy = BackupCopyPolicy(source=s3, target=gcs, sites=["blog"])
    [row] = copy_backups(policy=policy, encryption_key=key)
    assert row["copied"] == [full["backup"], inc["backup"]] and row["present"] == [], row
    source_objects = {o.key: o.size for o in s3.store().list("blog/backups/")
                      if o.key.split("/")[2] in (full["backup"], inc["backup"])}
    copied = {o.key: o.size for o in gcs.store().list("blog/backups/")}
    assert copied == source_objects and row["objects"] == len(source_objects) - 2  # manifests counted apart
    listed = catalog.list_backups(gcs.store(), "blog", key.get())
    assert [e.manifest.backup_id for e in listed] == [full["backup"], inc["backup"]] and not listed.problems
    assert not any(e.verified for e in listed)  # the copy earns its own proof
    assert unproven["backup"] not in {e.manifest.backup_id for e in listed}
    [again] = copy_backups(policy=policy, encryption_key=key)
    assert again["copied"] == [] and again["present"] == [full["backup"], inc["backup"]]

    # A source object whose bytes no longer match its manifest: refused, deleted on the target, nothing listed.
    target = LocalStorage(path=str(tmp_path / "third"), encryption="none")
    (tmp_path / "third").mkdir()
    part = catalog.load_manifest(s3.store(), "blog", full["backup"], key.get()).part("config")
    s3_client(s3.endpoint_url).put_object(Bucket=s3.bucket, Key=part.key, Body=b"not the config part")
    with pytest.raises(Exception, match="does not match|sha256"):
        copy_backups(policy=BackupCopyPolicy(source=s3, target=target, sites=["blog"]), encryption_key=key)
    assert catalog.list_backups(target.store(), "blog", key.get()) == []
    assert not target.store().exists(part.key)

    from pressfleet.fleet.sites import site_block_name

    type(site)(**site.model_dump()).save(site_block_name("blog"), overwrite=True)  # the copy's restore-test finds it
    [tested] = copy_backups(policy=policy, encryption_key=key, restore_test_copies=True, scratch=provisioned.server)
    assert tested["restore_test"]["backup"] == inc["backup"]
    assert catalog.list_backups(gcs.store(), "blog", key.get())[-1].verified
