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
