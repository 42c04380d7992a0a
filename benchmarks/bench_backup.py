"""Backup figures (issue 4, "Benchmarks"), all from one run on this machine.

A provisioned lab host (bb1) gets 1 GB of uploads (500 files of 1 MiB from /dev/urandom, incompressible, and 500
of 1 MiB of text, compressible) and a 200 MB table. Then, in this order:

1. The floor, measured here in the same run on the same host: `tar -cf - wp-content | zstd -3 -T0` plus
   `mariadb-dump --single-transaction | zstd -3 -T0`, streamed over plain OpenSSH (the `ssh` client) to a file
   on the control side, next to the local storage folder.
2. pressfleet's full backup (`engine.take_backup`, what the backup-site task runs) to local storage, then to S3
   (the moto server on loopback): ratio to the floor. Peak resident memory of this process is recorded.
3. 1 % changed (10 of the 1 MiB files rewritten, 1 % of the table's rows updated), then an incremental backup
   (changed files, and the binary log since the full backup's snapshot instead of a whole dump): its duration
   and stored size against the full one.
4. RTO: the restore-site flow onto a fresh lab host, provisioning included, until the restored site answers.

Targets (issue 4): full to local within 1.5x the floor, to S3 within 2.5x; incremental under 15 % of full;
restore to a fresh host, provisioning included, under 3 minutes. The lab shares 2 cores with everything else
that runs; the load average is recorded.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time

from pressfleet.lab import hosts as lab
from pressfleet.ssh.remote import run as remote_run

HOST, FRESH = "bb1", "bb2"
TARGETS = {"full_local_over_floor_max": 1.5, "full_s3_over_floor_max": 2.5, "incremental_over_full_max": 0.15,
           "restore_fresh_host_seconds_max": 180}

GENERATE = r"""
set -e
u=/var/www/blog/htdocs/wp-content/uploads/bench
mkdir -p "$u"
for i in $(seq 1 500); do head -c 1048576 /dev/urandom > "$u/random-$i.bin"; done
for i in $(seq 1 500); do seq $((i * 100000)) $((i * 100000 + 200000)) | head -c 1048576 > "$u/text-$i.txt"; done
chown -R blog:blog "$u"
mariadb blog -e "DROP TABLE IF EXISTS pf_bench; CREATE TABLE pf_bench (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
  INSERT INTO pf_bench (v) SELECT REPEAT(MD5(RAND()), 30) FROM seq_1_to_200000; ANALYZE TABLE pf_bench;" >/dev/null
mariadb --batch --skip-column-names -e "SELECT ROUND(SUM(data_length + index_length)) FROM information_schema.tables WHERE table_schema='blog'"
"""


def _ssh_floor(host: lab.LabHost, remote: str, out_path: str, known_hosts: str) -> float:
    """Time `remote` over the plain OpenSSH client (the host key pinned, as pressfleet pins it) into a file."""
    argv = ["ssh", "-i", str(lab.lab_key()), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
            f"UserKnownHostsFile={known_hosts}", "-o", "LogLevel=ERROR", f"root@{host.address}", remote]
    t = time.monotonic()
    with open(out_path, "wb") as out:
        subprocess.run(argv, stdout=out, check=True)
    return time.monotonic() - t


def run(write_result) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from blocks.storage import LocalStorage, S3Storage
    from flows.provision_wordpress import provision_wordpress
    from flows.restore_site import restore_site
    from pressfleet.backup import engine
    from pressfleet.lab.blocks import server_for
    from pressfleet.storage.local import LocalStore
    from tests.conftest import make_site
    from tests.storage.conftest import S3_KEY_ID, S3_SECRET, s3_client, start_moto

    work = tempfile.mkdtemp(prefix="pf-bench-backup-")
    moto = None
    results: dict = {"targets": TARGETS}
    try:
        with prefect_test_harness(server_startup_timeout=60):
            host = lab.up(HOST, log=lambda m: None)
            server = server_for(host)
            site = make_site(server=server)
            provision_wordpress(server=server, site=site, verify=False)
            with server.connect() as conn:
                db_bytes = int(remote_run(conn, ["sh", "-c", GENERATE], timeout=1800).stdout.strip().splitlines()[-1])
            results["site"] = {"uploads_bytes": 1000 * 2**20, "database_bytes": db_bytes}

            known_hosts = f"{work}/known_hosts"
            with open(known_hosts, "w") as f:
                f.write(f"{host.address} {host.host_key}\n")
            floor_files = _ssh_floor(host, "tar -C /var/www/blog/htdocs -cf - wp-content | zstd -q -3 -T0",
                                     f"{work}/floor-files.tar.zst", known_hosts)
            floor_db = _ssh_floor(host, "mariadb-dump --single-transaction --quick blog | zstd -q -3 -T0",
                                  f"{work}/floor-db.sql.zst", known_hosts)
            floor = floor_files + floor_db
            floor_bytes = os.path.getsize(f"{work}/floor-files.tar.zst") + os.path.getsize(f"{work}/floor-db.sql.zst")
            results["floor"] = {"seconds": round(floor, 2), "files_seconds": round(floor_files, 2),
                                "database_seconds": round(floor_db, 2), "bytes": floor_bytes}
            os.remove(f"{work}/floor-files.tar.zst")
            os.remove(f"{work}/floor-db.sql.zst")

            os.makedirs(f"{work}/store")
            local = LocalStore(f"{work}/store")
            config = site.config()
            with server.connect() as conn:
                t = time.monotonic()
                full = engine.take_backup(conn, config, local, force_full=True)
                full_s = time.monotonic() - t
            results["full_local"] = {"seconds": round(full_s, 2), "bytes": full.bytes_stored,
                                     "ratio_to_floor": round(full_s / floor, 2),
                                     "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}

            moto = start_moto(__import__("pathlib").Path(work))
            s3_client(moto.url).create_bucket(Bucket="bench")
            s3 = S3Storage(bucket="bench", endpoint_url=moto.url, region="us-east-1", access_key_id=S3_KEY_ID,
                           secret_access_key=S3_SECRET).store()
            with server.connect() as conn:
                t = time.monotonic()
                s3_full = engine.take_backup(conn, config, s3, force_full=True)
                s3_s = time.monotonic() - t
            results["full_s3"] = {"seconds": round(s3_s, 2), "bytes": s3_full.bytes_stored,
                                  "ratio_to_floor": round(s3_s / floor, 2)}
            moto.stop()
            moto = None

            with server.connect() as conn:
                remote_run(conn, ["sh", "-c", "for i in $(seq 1 5); do head -c 1048576 /dev/urandom > "
                                  "/var/www/blog/htdocs/wp-content/uploads/bench/random-$i.bin; "
                                  "seq $i 300000 | head -c 1048576 > /var/www/blog/htdocs/wp-content/uploads/bench/text-$i.txt; done; "
                                  "mariadb blog -e 'UPDATE pf_bench SET v = REPEAT(MD5(RAND()), 30) WHERE id % 100 = 0'"])
                t = time.monotonic()
                inc = engine.take_backup(conn, config, local)
                inc_s = time.monotonic() - t
            results["incremental_local"] = {
                "seconds": round(inc_s, 2), "bytes": inc.bytes_stored, "files_read": inc.manifest.files_changed,
                "files_total": inc.manifest.files_total, "time_over_full": round(inc_s / full_s, 3),
                "bytes_over_full": round(inc.bytes_stored / full.bytes_stored, 3),
                "database_from": inc.manifest.database_from}

            storage = LocalStorage(path=f"{work}/store", encryption="none")  # the benchmark measures plaintext
            lab.down(FRESH)
            fresh = lab.up(FRESH, log=lambda m: None)
            t = time.monotonic()
            restored = restore_site(site=site, storage=storage, target=server_for(fresh))
            rto = time.monotonic() - t
            status = subprocess.run(["curl", "-ksS", "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
                                     f"blog.lab.test:443:{fresh.address}", "https://blog.lab.test/"],
                                    capture_output=True, text=True, timeout=60).stdout
            results["restore_fresh_host"] = {"seconds": round(rto, 1), "provisioned": restored["provisioned"],
                                             "home_status": status, "restored": restored["restored"]}
        results["load_average"] = os.getloadavg()
        results["lab_hosts_running"] = len(lab.list_hosts())
        results["met"] = {
            "full_local": results["full_local"]["ratio_to_floor"] <= TARGETS["full_local_over_floor_max"],
            "full_s3": results["full_s3"]["ratio_to_floor"] <= TARGETS["full_s3_over_floor_max"],
            "incremental": results["incremental_local"]["time_over_full"] <= TARGETS["incremental_over_full_max"],
            "restore": results["restore_fresh_host"]["seconds"] <= TARGETS["restore_fresh_host_seconds_max"],
        }
        write_result("backup", results)
    finally:
        if moto is not None:
            moto.stop()
        lab.down(FRESH)
        lab.down(HOST)
        shutil.rmtree(work, ignore_errors=True)
