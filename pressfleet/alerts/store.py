"""The alert state on the control side: alerts, acks, silences, and the latest observations of collection.

One SQLite file (`<state>/alerts/alerts.db`, owner-only) shared by the watcher (which owns the alerts' states),
the CLI (acks, silences, listing) and the flows (collect-metrics writes its observations; update and restore
flows silence a site for their duration). WAL mode and short transactions: several processes use it at once.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional

from pressfleet.alerts.rules import AlertState, Observation, Silence
from pressfleet.paths import private_dirs, state_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    rule TEXT NOT NULL, resource TEXT NOT NULL, status TEXT NOT NULL, since REAL, clear_since REAL,
    value REAL, evidence TEXT, alert_id TEXT, notified INTEGER NOT NULL DEFAULT 0, severity TEXT, summary TEXT,
    policy TEXT, suppressed TEXT, updated REAL NOT NULL, PRIMARY KEY (rule, resource));
CREATE TABLE IF NOT EXISTS history (
    alert_id TEXT NOT NULL, event TEXT NOT NULL, at REAL NOT NULL, rule TEXT, resource TEXT, value REAL,
    detail TEXT);
CREATE INDEX IF NOT EXISTS history_alert ON history (alert_id);
CREATE TABLE IF NOT EXISTS acks (
    alert_id TEXT PRIMARY KEY, at REAL NOT NULL, by TEXT NOT NULL, note TEXT);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, rule TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL, until REAL NOT NULL, reason TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS observations (
    resource TEXT NOT NULL, check_name TEXT NOT NULL, value REAL, evidence TEXT, at REAL NOT NULL,
    PRIMARY KEY (resource, check_name));
"""


def default_path() -> Path:
    return state_dir() / "alerts" / "alerts.db"


@dataclass(frozen=True)
class AlertRow:
    rule: str
    resource: str
    status: str
    since: float
    value: Optional[float]
    evidence: dict
    alert_id: str
    notified: bool
    severity: str
    summary: str
    policy: str
    suppressed: str
    acked_by: str = ""
    acked_at: float = 0.0


class AlertStore:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_path()
        private_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:  # executescript commits on its own: not inside _db's transaction
            db.execute("PRAGMA busy_timeout=30000")
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # --- alert states (the watcher's) ---------------------------------------------------------------------

    def load_states(self) -> dict[tuple[str, str], AlertState]:
        with self._db() as db:
            rows = db.execute("SELECT rule, resource, status, since, clear_since, value, evidence, alert_id, notified "
                              "FROM alerts").fetchall()
        return {(r[0], r[1]): AlertState(rule=r[0], resource=r[1], status=r[2], since=r[3] or 0.0,
                                         clear_since=r[4] or 0.0, value=r[5], evidence=json.loads(r[6] or "{}"),
                                         alert_id=r[7] or "", notified=bool(r[8])) for r in rows}

    def save_states(self, states: Mapping[tuple[str, str], AlertState], meta: Mapping[tuple[str, str], dict],
                    now: float) -> None:
        """Replace the table with the round's states (`meta`: severity, summary, policy, suppressed per key)."""
        with self._db() as db:
            db.execute("DELETE FROM alerts")
            db.executemany(
                "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(s.rule, s.resource, s.status, s.since, s.clear_since, s.value, json.dumps(dict(s.evidence), default=str),
                  s.alert_id, int(s.notified), meta.get(k, {}).get("severity", ""), meta.get(k, {}).get("summary", ""),
                  meta.get(k, {}).get("policy", ""), meta.get(k, {}).get("suppressed", ""), now)
                 for k, s in states.items()])

    def record(self, alert_id: str, event: str, at: float, *, rule: str = "", resource: str = "",
               value: Optional[float] = None, detail: str = "") -> None:
        with self._db() as db:
            db.execute("INSERT INTO history VALUES (?,?,?,?,?,?,?)", (alert_id, event, at, rule, resource, value, detail))

    def history(self, alert_id: str | None = None) -> list[dict]:
        with self._db() as db:
            q = "SELECT alert_id, event, at, rule, resource, value, detail FROM history"
            rows = db.execute(q + (" WHERE alert_id = ? ORDER BY at" if alert_id else " ORDER BY at"),
                              (alert_id,) if alert_id else ()).fetchall()
        return [dict(zip(("alert_id", "event", "at", "rule", "resource", "value", "detail"), r)) for r in rows]

    def alerts(self, *, active_only: bool = True) -> list[AlertRow]:
        with self._db() as db:
            rows = db.execute(
                "SELECT a.rule, a.resource, a.status, a.since, a.value, a.evidence, a.alert_id, a.notified, a.severity,"
                " a.summary, a.policy, a.suppressed, k.by, k.at FROM alerts a LEFT JOIN acks k ON k.alert_id = a.alert_id"
                + (" WHERE a.status IN ('firing', 'resolving')" if active_only else "") + " ORDER BY a.since").fetchall()
        return [AlertRow(r[0], r[1], r[2], r[3] or 0.0, r[4], json.loads(r[5] or "{}"), r[6] or "", bool(r[7]),
                         r[8] or "", r[9] or "", r[10] or "", r[11] or "", r[12] or "", r[13] or 0.0) for r in rows]

    def find(self, alert_id: str) -> AlertRow | None:
        return next((a for a in self.alerts() if a.alert_id == alert_id), None)

    # --- acks ---------------------------------------------------------------------------------------------

    def ack(self, alert_id: str, by: str, note: str = "", now: float | None = None) -> bool:
        """Record an ack; False if that alert was acked already."""
        with self._db() as db:
            cur = db.execute("INSERT OR IGNORE INTO acks VALUES (?,?,?,?)", (alert_id, now or time.time(), by, note))
            return cur.rowcount == 1

    def acked(self, alert_id: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM acks WHERE alert_id = ?", (alert_id,)).fetchone() is not None

    # --- silences -----------------------------------------------------------------------------------------

    def add_silence(self, kind: str, target: str, seconds: float, reason: str = "", *, rule: str = "",
                    by: str = "", now: float | None = None) -> Silence:
        now = now or time.time()
        sil = Silence(id="s-" + secrets.token_hex(4), kind=kind, target=target, until=now + seconds, reason=reason,
                      rule=rule)  # type: ignore[arg-type]
        with self._db() as db:
            db.execute("INSERT INTO silences VALUES (?,?,?,?,?,?,?,?)",
                       (sil.id, kind, target, rule, now, sil.until, reason, by))
        return sil

    def end_silence(self, silence_id: str, now: float | None = None) -> bool:
        with self._db() as db:
            cur = db.execute("UPDATE silences SET until = ? WHERE id = ? AND until > ?",
                             (now or time.time(), silence_id, now or time.time()))
            return cur.rowcount == 1

    def end_silences_of(self, kind: str, target: str, now: float | None = None) -> int:
        """End every silence of this site or server now (a maintenance window closed early); returns how many."""
        with self._db() as db:
            cur = db.execute("UPDATE silences SET until = ? WHERE kind = ? AND target = ? AND until > ?",
                             (now or time.time(), kind, target, now or time.time()))
            return cur.rowcount

    def silences(self, now: float | None = None) -> list[Silence]:
        now = now or time.time()
        with self._db() as db:
            rows = db.execute("SELECT id, kind, target, until, reason, rule FROM silences WHERE until > ?",
                              (now,)).fetchall()
        return [Silence(id=r[0], kind=r[1], target=r[2], until=r[3], reason=r[4], rule=r[5]) for r in rows]

    # --- observations (collection's, read by the watcher) -------------------------------------------------

    def put_observations(self, items: Iterable[tuple[str, str, Optional[float], Mapping]], at: float) -> int:
        rows = [(res, check, value, json.dumps(dict(ev), default=str), at) for res, check, value, ev in items]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO observations VALUES (?,?,?,?,?)", rows)
        return len(rows)

    def observations_at(self, *, newer_than: float) -> dict[tuple[str, str], tuple[Observation, float]]:
        """Each (resource, check)'s newest observation with the time it was made."""
        with self._db() as db:
            rows = db.execute("SELECT resource, check_name, value, evidence, at FROM observations WHERE at >= ?",
                              (newer_than,)).fetchall()
        return {(r[0], r[1]): (Observation(r[2], json.loads(r[3] or "{}")), r[4]) for r in rows}


def as_dict(row: AlertRow) -> dict:
    return asdict(row)


def put_observations(rows: list, at: float | None = None, log=None) -> int:
    """Hand a flow's findings to the watcher's rules (this machine's alert store); one that cannot be written
    is logged, never fails the flow that found them."""
    if not rows:
        return 0
    try:
        return AlertStore().put_observations(rows, at or time.time())
    except (OSError, sqlite3.Error) as exc:
        if log:
            log(f"alert observations not written: {type(exc).__name__}: {exc}")
        return 0


MAINTENANCE_SECONDS = 2 * 3600  # a job's silence outlives a worker that died mid-job by at most this
GRACE_SECONDS = 5 * 60  # ...and a job that ended by this: a round or two for what it restarted to answer


@contextmanager
def maintenance(sites: Iterable[str], job: str, *, seconds: float = MAINTENANCE_SECONDS, grace: float = GRACE_SECONDS,
                log=None) -> Iterator[list]:
    """Silence SITES while JOB (an update, a restore) takes them down on purpose, and `grace` seconds after it.

    The alert store is the watcher's, on this machine: one that cannot be written is logged and the job goes on
    (an alert during it is the lesser harm than a job that does not run)."""
    store, held = None, []
    try:
        store = AlertStore()
        for name in sites:
            held.append(store.add_silence("site", name, seconds, f"{job} running", by=job))
    except (OSError, sqlite3.Error) as exc:
        if log:
            log(f"alerts not silenced during {job}: {type(exc).__name__}: {exc}")
    try:
        yield held
    finally:
        for sil in held:  # what the job restarted may take a round or two to answer again
            try:
                store.end_silence(sil.id, now=time.time() + grace)
            except (OSError, sqlite3.Error) as exc:
                if log:
                    log(f"silence {sil.id} ends on its own in {seconds / 3600:.0f} h: {exc}")
