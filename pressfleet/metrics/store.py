"""The metrics store: raw points, hourly and daily rollups, on SQLite (default) or PostgreSQL.

One SQLAlchemy Core schema, dialect-neutral SQL, the same tests on both databases
(`PRESSFLEET_TEST_PG_URL`). A series is identified by (metric, host, site, labels):

- `site` is '' for a host-level metric;
- `labels` is a canonical string (`canonical_labels({"mount": "/"})` == '{"mount":"/"}'), '' when none;
- `time` is stored as integer seconds since the Unix epoch (UTC): exact, indexable, the same on every
  database, and rollup buckets are plain integer arithmetic (`time - time % 3600`).

Writes are idempotent: the primary key is (metric, host, site, labels, time) and inserts skip rows already
stored (INSERT OR IGNORE / ON CONFLICT DO NOTHING), so a collection round stored twice is stored once.

`rollup_and_expire(now, raw_days=..., hourly_days=...)` rolls complete hours of raw points into `hourly`
(min, max, mean, count, last) and complete days of `hourly` into `daily`, then deletes raw points older
than `raw_days` and hourly rows older than `hourly_days` (daily rows are kept). Each series has its own
watermark per resolution (table `rollup_marks`: buckets before it are rolled up); `write_points` moves a
series' watermark back when it stores points behind it, so late points and series backfilled with old
history are rolled up before anything of theirs expires, and a point is expired only once its bucket is
rolled up. The collect-metrics flow runs it after every round. `read_series(...,
resolution='hour')` reads the rollups and aggregates the raw points not yet rolled up the same way, so a
series reads back whole at any resolution.

The URL: `url=` if given, else `PRESSFLEET_METRICS_URL`, else a SQLite file `state_dir()/metrics.db`.
PostgreSQL needs a synchronous driver: `postgresql+psycopg://user:pass@host/db` (psycopg 3).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pressfleet.paths import state_dir

HOUR = 3600
DAY = 86400
RESOLUTIONS = ("raw", "hour", "day")
ROLLUP_FIELDS = ("min", "max", "mean", "count", "last")
_EPOCH = pd.Timestamp(0, tz="UTC")

metadata = sa.MetaData()


def _key_columns() -> list[sa.Column]:
    return [
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("site", sa.Text, nullable=False, server_default=""),
        sa.Column("labels", sa.Text, nullable=False, server_default=""),
        sa.Column("time", sa.BigInteger, nullable=False),  # epoch seconds, UTC (bucket start for rollups)
    ]


points = sa.Table(
    "points",
    metadata,
    *_key_columns(),
    sa.Column("value", sa.Double, nullable=False),
    sa.PrimaryKeyConstraint("metric", "host", "site", "labels", "time", name="points_pk"),
    sa.Index("points_time", "time"),
    sqlite_with_rowid=False,
)


def _rollup_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        *_key_columns(),
        sa.Column("min", sa.Double, nullable=False),
        sa.Column("max", sa.Double, nullable=False),
        sa.Column("mean", sa.Double, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("metric", "host", "site", "labels", "time", name=f"{name}_pk"),
        sa.Index(f"{name}_time", "time"),
        sqlite_with_rowid=False,
    )


hourly = _rollup_table("hourly")
daily = _rollup_table("daily")

# Per series and resolution ('hour', 'day'): every bucket before `mark` is rolled up from its source; the
# buckets from `mark` on are (re)computed by the next rollup. write_points lowers it for points behind it.
rollup_marks = sa.Table(
    "rollup_marks",
    metadata,
    *_key_columns()[:4],
    sa.Column("resolution", sa.Text, nullable=False),
    sa.Column("mark", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("metric", "host", "site", "labels", "resolution", name="rollup_marks_pk"),
    sqlite_with_rowid=False,
)
_KEY = ("metric", "host", "site", "labels")
_TABLES = {"raw": points, "hour": hourly, "day": daily}
_STEP = {"hour": HOUR, "day": DAY}


def canonical_labels(labels: Mapping[str, Any] | str | None) -> str:
    """Labels as the store keys them: compact JSON with sorted keys, '' for none."""
    if labels is None or labels == "" or (isinstance(labels, float) and math.isnan(labels)):
        return ""
    if isinstance(labels, str):
        labels = json.loads(labels)
    if not labels:
        return ""
    return json.dumps({str(k): str(v) for k, v in labels.items()}, sort_keys=True, separators=(",", ":"))


def parse_labels(labels: str) -> dict[str, str]:
    return json.loads(labels) if labels else {}


def to_epoch(values: Any) -> np.ndarray:
    """Times (datetimes, pandas timestamps, ISO strings, or epoch seconds) as int64 epoch seconds.

    Naive datetimes are taken as UTC; sub-second parts are dropped.
    """
    arr = values if isinstance(values, (pd.Index, pd.Series, np.ndarray)) else pd.Index(list(values))
    if len(arr) == 0:
        return np.array([], dtype="int64")
    if pd.api.types.is_numeric_dtype(arr.dtype) and not pd.api.types.is_bool_dtype(arr.dtype):
        return np.floor(np.asarray(arr, dtype="float64")).astype("int64")
    if isinstance(arr, np.ndarray):
        arr = pd.Index(arr)
    if pd.api.types.is_datetime64_any_dtype(arr.dtype):
        ts = pd.to_datetime(arr, utc=True)
    else:
        ts = pd.to_datetime(arr, utc=True, format="mixed")
    idx = pd.DatetimeIndex(ts)
    return np.asarray((idx - _EPOCH) // pd.Timedelta(seconds=1), dtype="int64")


def from_epoch(seconds: Iterable[int]) -> pd.DatetimeIndex:
    arr = np.asarray(seconds if isinstance(seconds, np.ndarray) else list(seconds), dtype="int64")
    return pd.DatetimeIndex(pd.to_datetime(arr, unit="s", utc=True))


def _epoch1(t: Any) -> int:
    return int(to_epoch([t])[0])


@dataclass(frozen=True)
class Point:
    """One measurement. `time` is anything `to_epoch` reads; `labels` a mapping or canonical string."""

    time: Any
    host: str
    metric: str
    value: float
    site: str = ""
    labels: Mapping[str, Any] | str | None = None


@dataclass
class RollupReport:
    hourly_buckets_written: int = 0
    daily_buckets_written: int = 0
    raw_deleted: int = 0
    hourly_deleted: int = 0
    hourly_range: tuple[datetime, datetime] | None = None
    daily_range: tuple[datetime, datetime] | None = None
    hourly_series: int = 0  # series whose hourly buckets were (re)computed
    daily_series: int = 0
    notes: list[str] = field(default_factory=list)


def default_url() -> str:
    env = os.environ.get("PRESSFLEET_METRICS_URL")
    if env:
        return env
    return f"sqlite:///{state_dir() / 'metrics.db'}"


def _frame_from_points(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        df = data
    else:
        rows = []
        for p in data:
            if isinstance(p, Point):
                rows.append({"time": p.time, "host": p.host, "site": p.site, "metric": p.metric,
                             "labels": p.labels, "value": p.value})
            else:
                rows.append(dict(p))
        df = pd.DataFrame(rows, columns=["time", "host", "site", "metric", "labels", "value"])
    missing = {"time", "host", "metric", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"points lack column(s): {', '.join(sorted(missing))}")
    out = pd.DataFrame({
        "metric": df["metric"].astype(str).to_numpy(),
        "host": df["host"].astype(str).to_numpy(),
        "site": (df["site"].fillna("").astype(str).to_numpy() if "site" in df.columns else ""),
        "labels": (_canonical_column(df["labels"]) if "labels" in df.columns else ""),
        "time": to_epoch(df["time"]),
        "value": pd.to_numeric(df["value"], errors="coerce").astype("float64").to_numpy(),
    }, index=pd.RangeIndex(len(df)))
    out = out[np.isfinite(out["value"].to_numpy())]
    return out.drop_duplicates(subset=["metric", "host", "site", "labels", "time"], keep="first")


def _canonical_column(col: pd.Series) -> np.ndarray:
    """canonical_labels over a column, once per distinct value (strings; dicts one by one)."""
    cache: dict[Any, str] = {}
    out = []
    for v in col:
        if isinstance(v, (str, type(None))):
            if v not in cache:
                cache[v] = canonical_labels(v)
            out.append(cache[v])
        else:
            out.append(canonical_labels(v))
    return np.asarray(out, dtype=object)


class MetricsStore:
    """The store at one database URL. Thread-safe (one SQLAlchemy engine)."""

    def __init__(self, url: str | None = None, *, create: bool = True, echo: bool = False) -> None:
        self.url = url or default_url()
        u = sa.engine.make_url(self.url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if u.get_backend_name() == "sqlite":
            if u.database and u.database != ":memory:":
                _private_file(os.path.abspath(u.database))
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(self.url, **kwargs)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            had_marks = sa.inspect(self.engine).has_table(rollup_marks.name)
            metadata.create_all(self.engine, checkfirst=True)
            if not had_marks:
                self._seed_marks()

    def _seed_marks(self) -> None:
        """A store written before watermarks existed: every series is rolled up again from its first point."""
        with self.engine.begin() as conn:
            for res, src, step in (("hour", points, HOUR), ("day", hourly, DAY)):
                k = sa.literal_column(str(step))
                first = sa.func.min(src.c.time)
                q = (sa.select(*[src.c[c] for c in _KEY], (first - first % k).label("mark"))
                     .group_by(*[src.c[c] for c in _KEY]))
                rows = [dict(r._mapping, resolution=res) for r in conn.execute(q)]
                if rows:
                    self._lower_marks(conn, rows)

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- writing

    def write_points(self, data: Any, *, batch: int = 5000) -> int:
        """Store points (DataFrame with time, host, metric, value[, site, labels], or Points, or dicts).

        Points already stored (same metric, host, site, labels and time) are skipped; non-finite values are
        not stored. Returns the number of rows newly stored.
        """
        df = _frame_from_points(data)
        if df.empty:
            return 0
        rows = df.to_dict("records")
        first = df.groupby(list(_KEY), sort=False)["time"].min().reset_index()
        marks = []
        for rec in first.to_dict("records"):
            t = int(rec.pop("time"))
            marks.append({**rec, "resolution": "hour", "mark": _floor(t, HOUR)})
            marks.append({**rec, "resolution": "day", "mark": _floor(t, DAY)})
        stored = 0
        with self.engine.begin() as conn:
            for i in range(0, len(rows), batch):
                stored += self._insert_ignore(conn, points, rows[i:i + batch])
            # after the points, in the same transaction: a rollup running meanwhile either saw these points
            # or has its watermark moved back behind them
            for i in range(0, len(marks), batch):
                self._lower_marks(conn, marks[i:i + batch])
        return stored

    def _lower_marks(self, conn: sa.Connection, rows: list[dict]) -> None:
        """Set each series' watermark to `mark` where it has none or a later one."""
        if self.dialect in ("sqlite", "postgresql"):
            if self.dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            ins = insert(rollup_marks)
            conn.execute(ins.on_conflict_do_update(
                index_elements=[*_KEY, "resolution"], set_={"mark": ins.excluded.mark},
                where=rollup_marks.c.mark > ins.excluded.mark), rows)
            return
        for row in rows:  # any other database: read, then insert or update
            where = [rollup_marks.c[c] == row[c] for c in (*_KEY, "resolution")]
            cur = conn.execute(sa.select(rollup_marks.c.mark).where(*where)).scalar()
            if cur is None:
                conn.execute(rollup_marks.insert(), row)
            elif cur > row["mark"]:
                conn.execute(rollup_marks.update().where(*where).values(mark=row["mark"]))

    def _insert_ignore(self, conn: sa.Connection, table: sa.Table, rows: list[dict]) -> int:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
            res = conn.execute(insert(table).on_conflict_do_nothing(), rows)
            return max(res.rowcount, 0)
        if self.dialect == "postgresql":  # executemany reports no row count there: count what RETURNING returns
            from sqlalchemy.dialects.postgresql import insert
            res = conn.execute(insert(table).on_conflict_do_nothing().returning(table.c.time), rows)
            return len(res.all())
        n = 0  # any other database: one row at a time, each in a savepoint
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(table.insert(), row)
                n += 1
            except sa.exc.IntegrityError:
                pass
        return n

    # ----------------------------------------------------------------- reading

    def read_series(self, metric: str, host: str, site: str | None = None, start: Any = None, end: Any = None,
                    resolution: str = "raw", *, labels: Mapping[str, Any] | str | None = None,
                    field: str = "mean") -> pd.Series:
        """One series as a float Series on a UTC DatetimeIndex, `start` <= time < `end`.

        resolution 'raw' reads the points; 'hour' and 'day' read the rollups (bucket start times) and
        aggregate the newer points not yet rolled up the same way; `field` picks min, max, mean, count or
        last of each bucket.
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution!r}")
        if field not in ROLLUP_FIELDS:
            raise ValueError(f"field must be one of {ROLLUP_FIELDS}, not {field!r}")
        key = {"metric": metric, "host": host, "site": site or "", "labels": canonical_labels(labels)}
        lo = _epoch1(start) if start is not None else None
        hi = _epoch1(end) if end is not None else None
        with self.engine.connect() as conn:
            if resolution == "raw":
                t, v = self._read_raw(conn, key, lo, hi)
                return _series(t, v, metric)
            step = _STEP[resolution]
            if lo is not None:
                lo -= lo % step
            frames = []
            covered = lo
            sources = [daily, hourly] if resolution == "day" else [hourly]
            for table in sources:
                q = sa.select(table.c.time, table.c["min"], table.c["max"], table.c.mean, table.c["count"],
                              table.c["last"]).where(*_key_where(table, key))
                if covered is not None:
                    q = q.where(table.c.time >= covered)
                if hi is not None:
                    q = q.where(table.c.time < hi)
                rows = conn.execute(q.order_by(table.c.time)).all()
                if rows:
                    f = pd.DataFrame(rows, columns=["time", "min", "max", "mean", "count", "last"])
                    frames.append(f)
                    step_src = DAY if table is daily else HOUR
                    covered = int(f["time"].iloc[-1]) + step_src
            t, v = self._read_raw(conn, key, covered, hi)
            if len(t):
                frames.append(pd.DataFrame({"time": t, "min": v, "max": v, "mean": v, "count": 1, "last": v}))
        if not frames:
            return _series([], [], metric)
        agg = _aggregate(pd.concat(frames, ignore_index=True), step)
        return _series(agg["time"].to_numpy(), agg[field].to_numpy(dtype="float64"), metric)

    def _read_raw(self, conn, key, lo, hi) -> tuple[np.ndarray, np.ndarray]:
        q = sa.select(points.c.time, points.c.value).where(*_key_where(points, key))
        if lo is not None:
            q = q.where(points.c.time >= lo)
        if hi is not None:
            q = q.where(points.c.time < hi)
        rows = conn.execute(q.order_by(points.c.time)).all()
        if not rows:
            return np.array([], dtype="int64"), np.array([], dtype="float64")
        a = np.asarray(rows, dtype="float64")
        return a[:, 0].astype("int64"), a[:, 1]

    def list_series(self, metric: str | None = None, host: str | None = None) -> pd.DataFrame:
        """Every series in the store: metric, host, site, labels, first and last time (UTC) at any resolution."""
        parts = []
        with self.engine.connect() as conn:
            for table in (points, hourly, daily):
                q = sa.select(table.c.metric, table.c.host, table.c.site, table.c.labels,
                              sa.func.min(table.c.time), sa.func.max(table.c.time))
                if metric is not None:
                    q = q.where(table.c.metric == metric)
                if host is not None:
                    q = q.where(table.c.host == host)
                q = q.group_by(table.c.metric, table.c.host, table.c.site, table.c.labels)
                parts.extend(conn.execute(q).all())
        cols = ["metric", "host", "site", "labels", "first", "last"]
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[s, UTC]" if c in ("first", "last") else object)
                                 for c in cols})
        df = pd.DataFrame(parts, columns=cols)
        df = df.groupby(["metric", "host", "site", "labels"], as_index=False).agg(first=("first", "min"),
                                                                                 last=("last", "max"))
        df["first"] = from_epoch(df["first"].to_numpy(dtype="int64"))
        df["last"] = from_epoch(df["last"].to_numpy(dtype="int64"))
        return df.sort_values(["metric", "host", "site", "labels"], ignore_index=True)

    def count(self, resolution: str = "raw") -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_TABLES[resolution])).scalar_one())

    # ------------------------------------------------------- rollup / retention

    def rollup_and_expire(self, now: Any = None, *, raw_days: float = 14, hourly_days: float = 400,
                          lateness: timedelta = timedelta(hours=6)) -> RollupReport:
        """Roll complete hours of raw points into `hourly` and complete days of `hourly` into `daily`, then
        delete raw points older than `raw_days` and hourly rows older than `hourly_days` (both cut on a UTC
        day boundary, and only what is already rolled up).

        Each series is rolled up from its own watermark (see `rollup_marks`): a series backfilled with old
        history, or given points behind its watermark, is rolled up from its oldest new point before any of
        it expires. When a series is rolled up again, its buckets within `lateness` before its watermark are
        recomputed too (for rows written to the tables directly). A series with nothing new is not touched,
        so running it every few minutes is cheap, and rerunning it changes nothing.
        """
        if hourly_days < raw_days:
            raise ValueError("hourly_days must be at least raw_days")
        now_s = _epoch1(now if now is not None else datetime.now(timezone.utc))
        late = max(int(lateness.total_seconds()), 0)
        rep = RollupReport()
        raw_cut = _floor(now_s - int(raw_days * DAY), DAY)
        hourly_cut = _floor(now_s - int(hourly_days * DAY), DAY)
        with self.engine.begin() as conn:
            self._lock_marks(conn)
            got = self._rollup(conn, points, hourly, "hour", HOUR, _floor(now_s, HOUR), late)
            if got:
                rep.hourly_range, rep.hourly_buckets_written, rep.hourly_series = got
            got = self._rollup(conn, hourly, daily, "day", DAY, _floor(now_s, DAY), late)
            if got:
                rep.daily_range, rep.daily_buckets_written, rep.daily_series = got
            rep.raw_deleted = self._expire(conn, points, "hour", raw_cut)
            rep.hourly_deleted = self._expire(conn, hourly, "day", hourly_cut)
        return rep

    def _lock_marks(self, conn: sa.Connection) -> None:
        """One rollup at a time, and no watermark moved back while one runs (write_points waits)."""
        if self.dialect == "postgresql":
            conn.execute(sa.text(f"LOCK TABLE {rollup_marks.name} IN SHARE ROW EXCLUSIVE MODE"))
        else:  # SQLite: a write first, so the transaction holds the database's write lock from here on
            conn.execute(rollup_marks.update().where(sa.false()).values(mark=0))

    def _rollup(self, conn, src: sa.Table, dst: sa.Table, res: str, step: int, end: int, late: int):
        """(Re)compute, per series whose watermark is before `end`, the buckets from (watermark - lateness)
        to `end`; move those watermarks to `end`. Returns ((from, to), buckets written, series) or None."""
        m = rollup_marks
        back = -(-late // step) * step  # lateness in whole buckets
        due = conn.execute(sa.select(*[m.c[c] for c in _KEY], m.c.mark)
                           .where(m.c.resolution == res, m.c.mark < end)).all()
        if not due:
            return None
        pending = sa.and_(*[m.c[c] == dst.c[c] for c in _KEY], m.c.resolution == res, m.c.mark < end,
                          dst.c.time >= m.c.mark - back)
        conn.execute(sa.delete(dst).where(dst.c.time < end, sa.exists().where(pending)))
        cols = ["metric", "host", "site", "labels", "time", "min", "max", "mean", "count", "last"]
        conn.execute(dst.insert().from_select(cols, _rollup_select(src, step, end, res, back)))
        written = conn.execute(sa.select(sa.func.count()).select_from(dst)
                               .where(dst.c.time < end, sa.exists().where(pending))).scalar_one()
        if res == "hour":  # the days holding recomputed hours are rolled up again too
            self._lower_marks(conn, [{**{c: r._mapping[c] for c in _KEY}, "resolution": "day",
                                      "mark": _floor(int(r.mark) - back, DAY)} for r in due])
        conn.execute(m.update().where(m.c.resolution == res, m.c.mark < end).values(mark=end))
        lo = min(int(r.mark) for r in due) - back
        return ((from_epoch([lo])[0].to_pydatetime(), from_epoch([end])[0].to_pydatetime()),
                max(int(written), 0), len(due))

    def _expire(self, conn, table: sa.Table, res: str, cut: int) -> int:
        """Delete rows of `table` before `cut` whose bucket the next resolution has rolled up."""
        m = rollup_marks
        rolled = sa.exists().where(*[m.c[c] == table.c[c] for c in _KEY], m.c.resolution == res,
                                   m.c.mark > table.c.time)
        return max(conn.execute(sa.delete(table).where(table.c.time < cut, rolled)).rowcount, 0)


def _floor(t: int, step: int) -> int:
    return t - t % step


def _key_where(table: sa.Table, key: dict) -> list:
    return [table.c.metric == key["metric"], table.c.host == key["host"], table.c.site == key["site"],
            table.c.labels == key["labels"]]


def _rollup_select(src: sa.Table, step: int, end: int, res: str, back: int) -> sa.Select:
    """min, max, mean, count and last per series and bucket of `src` (raw points or a finer rollup), for the
    series whose `res` watermark is before `end`, from (watermark - `back`) to `end`."""
    k = sa.literal_column(str(int(step)))  # inline: PostgreSQL must see GROUP BY and SELECT as one expression
    bucket = (src.c.time - src.c.time % k)
    keys = [src.c.metric, src.c.host, src.c.site, src.c.labels]
    m = rollup_marks
    due = sa.and_(*[m.c[c] == src.c[c] for c in _KEY], m.c.resolution == res, m.c.mark < end,
                  src.c.time >= m.c.mark - back)
    if src is points:
        aggs = [sa.func.min(src.c.value), sa.func.max(src.c.value), sa.func.avg(src.c.value),
                sa.func.count(), sa.func.max(src.c.time)]
        val = "value"
    else:
        total = sa.func.sum(src.c["count"])
        aggs = [sa.func.min(src.c["min"]), sa.func.max(src.c["max"]),
                sa.func.sum(src.c.mean * src.c["count"]) / sa.cast(total, sa.Double),
                sa.cast(total, sa.BigInteger), sa.func.max(src.c.time)]
        val = "last"
    names = ["vmin", "vmax", "vmean", "vcount", "tlast"]
    g = (sa.select(*keys, bucket.label("bucket"), *[a.label(n) for a, n in zip(aggs, names)])
         .select_from(src.join(m, due))
         .where(src.c.time < end)
         .group_by(*keys, bucket)
         .subquery("g"))
    s2 = src.alias("s2")
    return (sa.select(g.c.metric, g.c.host, g.c.site, g.c.labels, g.c.bucket, g.c.vmin, g.c.vmax, g.c.vmean,
                      g.c.vcount, s2.c[val])
            .select_from(g.join(s2, sa.and_(s2.c.metric == g.c.metric, s2.c.host == g.c.host,
                                             s2.c.site == g.c.site, s2.c.labels == g.c.labels,
                                             s2.c.time == g.c.tlast))))


def _aggregate(df: pd.DataFrame, step: int) -> pd.DataFrame:
    """Combine rows (finer rollups or raw points) into buckets of `step` seconds, as the rollup SQL does."""
    df = df.sort_values("time", kind="stable")
    df["bucket"] = df["time"] - df["time"] % step
    df["wsum"] = df["mean"] * df["count"]
    g = df.groupby("bucket", sort=True)
    out = pd.DataFrame({
        "time": g["bucket"].first(),
        "min": g["min"].min(),
        "max": g["max"].max(),
        "mean": g["wsum"].sum() / g["count"].sum(),
        "count": g["count"].sum(),
        "last": g["last"].last(),
    })
    return out.reset_index(drop=True)


def _series(t, v, name: str) -> pd.Series:
    return pd.Series(np.asarray(v, dtype="float64"), index=from_epoch(np.asarray(t, dtype="int64")),
                     name=name).rename_axis("time")


def _private_file(path: str) -> None:
    """Create the SQLite file (and its folder) for the owner alone: SQLite gives its -wal and -shm files the
    database file's mode, and metrics name every host and site of the fleet."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# ----------------------------------------------------------------- module-level convenience

_stores: dict[str, MetricsStore] = {}
_lock = threading.Lock()


def open_store(url: str | None = None) -> MetricsStore:
    """The store at `url` (default: `default_url()`), one per URL per process."""
    url = url or default_url()
    with _lock:
        if url not in _stores:
            _stores[url] = MetricsStore(url)
        return _stores[url]


def write_points(data: Any, *, url: str | None = None) -> int:
    return open_store(url).write_points(data)


def read_series(metric: str, host: str, site: str | None = None, start: Any = None, end: Any = None,
                resolution: str = "raw", *, labels: Mapping[str, Any] | str | None = None, field: str = "mean",
                url: str | None = None) -> pd.Series:
    return open_store(url).read_series(metric, host, site, start, end, resolution, labels=labels, field=field)


def list_series(metric: str | None = None, host: str | None = None, *, url: str | None = None) -> pd.DataFrame:
    return open_store(url).list_series(metric, host)


def rollup_and_expire(now: Any = None, *, raw_days: float = 14, hourly_days: float = 400,
                      lateness: timedelta = timedelta(hours=6), url: str | None = None) -> RollupReport:
    return open_store(url).rollup_and_expire(now, raw_days=raw_days, hourly_days=hourly_days, lateness=lateness)
