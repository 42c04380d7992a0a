"""A write load on a site's primary whose acknowledged writes are known (drills, tests, benchmarks).

One SSH session feeds MariaDB an INSERT and a SELECT of the same id per commit; the id printed back means the
commit returned to the client, i.e. the write was acknowledged (with semi-sync: after the standby had it).
Each ack is kept with the control side's monotonic time it arrived, so a cut at time T splits the writes into
those acknowledged before it and after.
"""

from __future__ import annotations

import threading
import time

from pressfleet.dr import replication as rep
from pressfleet.ssh.remote import open_channel

TABLE = "pressfleet_drill"


def create_sql() -> str:
    return (f"CREATE TABLE IF NOT EXISTS {TABLE} (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))"
            " ENGINE=InnoDB;\n")


class WriteLoad:
    """Inserts into TABLE (or another) of DATABASE on the server CONN reaches, from FIRST up, until stopped."""

    def __init__(self, conn, database: str, *, table: str = TABLE, first: int = 1, max_seconds: float = 120) -> None:
        self.conn, self.database, self.table, self.first = conn, rep.connection_name(database), table, int(first)
        self.max_seconds = max(1, min(int(max_seconds), 3600))
        if not table.replace("_", "").isalnum():
            raise ValueError(f"{table!r} is not a table name")
        self.acked: list[tuple[int, float]] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            channel = open_channel(self.conn)
            channel.settimeout(1.0)
            # Bounded on the host too (timeout(1) stops it by its own PID): a load whose session is gone ends.
            channel.exec_command(
                f"timeout {int(self.max_seconds)} sh -c 'seq {self.first} {self.first + 10_000_000} | while read i; do "
                f"echo \"INSERT INTO {self.table} (n) VALUES ($i); SELECT $i;\"; done | "
                f"mariadb --batch --skip-column-names --unbuffered {self.database}'")
            buf = b""
            while not self._stop.is_set():
                try:
                    chunk = channel.recv(4096)
                except TimeoutError:
                    continue
                except OSError as exc:
                    if "timed out" in str(exc):
                        continue
                    raise
                if not chunk:
                    break
                now = time.monotonic()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                self.acked += [(int(x), now) for x in lines if x.strip().isdigit()]
            channel.close()
        except Exception as exc:  # noqa: BLE001 - a cut under it is the point; the caller reads `error`
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self) -> "WriteLoad":
        self._thread.start()
        return self

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        return len(self.acked) >= count

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def acked_before(self, t: float) -> list[tuple[int, float]]:
        return [(n, at) for n, at in self.acked if at < t]
