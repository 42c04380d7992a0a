"""A lock per site: at most one run at a time writes to a site or to its backups.

Every flow that changes a site or its storage (backup-site, restore-site, restore-test, prune-backups,
ship-binlogs, provision-wordpress) holds its sites' locks while it works. Without them a backup, a
restore, a prune and a provisioning of one site could run at once (the backup-id check, for one, is
check-then-write), and each would see the others' half-done work.

The locks are Prefect global concurrency limits named ``pressfleet-site-<site>`` with a limit of 1,
created on first use (they show on the UI's Concurrency page, with the run that holds each). A run
that finds a site busy waits for it, up to ``wait_seconds`` (then it is refused with one sentence and
changes nothing), and says in its log and artifact how long it waited (``PRESSFLEET_SITE_LOCK_WAIT`` sets
the wait in seconds; 3 hours by default). A run holding several sites
takes all their slots in one atomic request, so two runs never deadlock on each other's sites.

A holder's slot is a lease that Prefect renews while the run lives (every 75 % of ``LEASE_SECONDS``); a
run that crashed (its process killed) stops renewing, and the Prefect server's repossessor (every 15 s)
frees the slot once the lease has expired: measured 74 s after a SIGKILL with a 60 s lease. An ephemeral
Prefect (no server: a test harness, a script) runs no repossessor, so a crashed holder's slot stays until
`prefect global-concurrency-limit update pressfleet-site-SITE --active-slots 0`.

Re-entrant: a flow that calls another flow on the same site (restore-site provisioning a recovery host)
does not wait on itself. What counts as "this run" is the context the lock was taken in (a context
variable): a nested flow runs in it, another flow run (another thread or process) does not.

Per host, too: every flow that works on a host's sites also takes a slot of the host's limit,
``pressfleet-host-<address>`` (``-<port>`` appended when SSH is not on 22), whose size is the Server block's
``max_operations`` (2 by default): at most that many backups, restores, restore-tests, provisionings and
binary-log shippings run on one host at once, whichever worker runs them. Site and host slots are taken in
the same atomic request, so a run waiting for a host never holds a site meanwhile.

These limits live in one Prefect server: the fleet's control machine. Runs driven by two Prefect
servers against the same sites are not serialized by them.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

from pressfleet.validate import InvalidInput, hostname, site_name

LOCK_PREFIX = "pressfleet-site-"
HOST_PREFIX = "pressfleet-host-"
# one run at a time writes a host's shared files (nginx includes, fail2ban jails, firewall, PHP-FPM's global file
# and every site's pool, all rendered from every site on the host): two provisions at once would each render
# them without the other's new site
HOST_FILES_PREFIX = "pressfleet-hostfiles-"
DEFAULT_HOST_OPERATIONS = 2  # the Server block's max_operations when it does not say
DEFAULT_WAIT_SECONDS = 3 * 3600.0  # a nightly backup of a large site can hold a site this long
WAIT_ENV = "PRESSFLEET_SITE_LOCK_WAIT"  # seconds a run waits for a busy site (the default above when unset)
LEASE_SECONDS = 120.0  # renewed every 90 s while the run lives; a crashed holder frees the site after this
WAIT_WORTH_SAYING = 1.0  # taking a free lock is one API round trip; a wait past this is reported

_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("pressfleet_site_locks", default=frozenset())
_HELD_HOSTS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("pressfleet_host_locks",
                                                                             default=frozenset())


class SiteBusy(InvalidInput):
    """Another run held a site's lock for longer than this run would wait."""


@dataclass(frozen=True)
class LockInfo:
    """What taking the locks cost: the sites, the seconds waited, and a sentence for the artifact."""

    sites: tuple[str, ...]
    waited: float
    job: str

    @property
    def note(self) -> str:
        """One sentence for the run's artifact and log ('' when there was nothing worth saying)."""
        return wait_note(self.sites, self.waited, self.job)


def lock_name(site: str) -> str:
    """The Prefect concurrency limit that stands for one site (the site name is checked first)."""
    return LOCK_PREFIX + site_name(site)


def host_lock_name(address: str, port: int = 22) -> str:
    """The Prefect concurrency limit that stands for one host: its checked address (lower case, ':' of an
    IPv6 address as '-'), and its SSH port when not 22. Two Server blocks naming one host share it."""
    name = hostname(address).lower().replace(":", "-")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidInput(f"{port!r} is not an SSH port (1-65535)")
    return HOST_PREFIX + name + ("" if port == 22 else f"-{port}")


def host_limits(servers: Iterable) -> dict[str, int]:
    """{host limit name: slots} for the Server blocks a run works on (each host once; the smallest
    `max_operations` when two blocks name one host). A block without the field counts 2."""
    out: dict[str, int] = {}
    for server in servers:
        if server is None:
            continue
        slots = getattr(server, "max_operations", None) or DEFAULT_HOST_OPERATIONS
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise InvalidInput(f"max_operations of server {server.address!r} must be a whole number from 1 up")
        name = host_lock_name(server.address, server.port)
        out[name] = min(slots, out.get(name, slots))
    return out


def host_files_limits(servers: Iterable) -> dict[str, int]:
    """{limit name: 1} standing for the shared files of each host of `servers` (see HOST_FILES_PREFIX)."""
    return {HOST_FILES_PREFIX + n.removeprefix(HOST_PREFIX): 1 for n in host_limits(servers)}


def _split_hosts(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(hosts a slot is held of, hosts whose shared files are held), as addresses, from limit names."""
    names = sorted(names)
    return ([n.removeprefix(HOST_PREFIX) for n in names if n.startswith(HOST_PREFIX)],
            [n.removeprefix(HOST_FILES_PREFIX) for n in names if n.startswith(HOST_FILES_PREFIX)])


def to_acquire(sites: Iterable[str], held: Iterable[str] = ()) -> tuple[str, ...]:
    """The sites this run still has to lock: sorted, each once, without those it already holds."""
    mine = set(held)
    return tuple(sorted({site_name(s) for s in sites} - mine))


def _sites_text(sites: Iterable[str]) -> str:
    names = [f"'{s}'" for s in sites]
    if len(names) <= 1:
        return "site " + "".join(names)
    return "sites " + ", ".join(names[:-1]) + " and " + names[-1]


def wait_note(sites: Iterable[str], waited: float, job: str) -> str:
    """'backup-site waited 12.3 s for site 'blog' (another run was writing to it).', or '' for no real wait."""
    sites = tuple(sites)
    if not sites or waited < WAIT_WORTH_SAYING:
        return ""
    return f"{job} waited {waited:.1f} s for {_sites_text(sites)} (another run was writing to it)."


def held_sentence(sites: Iterable[str], hosts: Iterable[str], job: str) -> str:
    """'backup-site holds the lock of site 'a' and a slot of host 10.0.0.5.' for the run's log."""
    sites, (hosts, files) = tuple(sites), _split_hosts(hosts)
    parts = [f"the lock of {_sites_text(sites)}"] if sites else []
    if hosts:
        parts.append(f"a slot of host{'s' if len(hosts) > 1 else ''} {', '.join(hosts)}")
    if files:
        parts.append(f"the shared files of host{'s' if len(files) > 1 else ''} {', '.join(files)}")
    return f"{job} holds {' and '.join(parts)}."


def busy_sentence(sites: Iterable[str], waited: float, job: str, hosts: Iterable[str] = ()) -> str:
    """The refusal when the wait ran out: what, how long, and what to do."""
    sites, (hosts, files) = tuple(sites), _split_hosts(hosts)
    if hosts or files:
        what = [_sites_text(sites)] if sites else []
        what += [f"host {', '.join(hosts)}"] if hosts else []
        what += [f"the shared files of host {', '.join(files)} (one provisioning or site removal at a time "
                 "writes them)"] if files else []
        return (f"{job} did not start: {' or '.join(what)} stayed busy with other runs (each host takes at most "
                f"its Server block's max_operations at once) for {waited:.0f} s; nothing was changed, run it again "
                f"when they have finished (the Prefect UI's Concurrency page shows the holders).")
    return (f"{job} did not start: {_sites_text(sites)} stayed locked by another run (backup, restore, "
            f"restore-test, prune, binary-log shipping or provisioning) for {waited:.0f} s; nothing was changed, "
            f"run it again when that run has finished (the Prefect UI's Concurrency page shows the holder).")


def wait_limit(value: str | None = None) -> float:
    """Seconds a run waits for a busy site: PRESSFLEET_SITE_LOCK_WAIT (0 to 86400), else 3 hours."""
    raw = os.environ.get(WAIT_ENV) if value is None else value
    if raw is None or raw == "":
        return DEFAULT_WAIT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise InvalidInput(f"{WAIT_ENV} must be a number of seconds from 0 to 86400, not {raw[:40]!r}")
    return seconds


def held_sites() -> frozenset[str]:
    """The sites whose locks this run (this context) holds."""
    return _HELD.get()


def held_hosts() -> frozenset[str]:
    """The host limits this run (this context) holds a slot of."""
    return _HELD_HOSTS.get()


def _ensure_limits(names: list[str] | dict[str, int]) -> None:
    """Create each limit if it is missing (a list: sites, limit 1; a dict: name -> slots) or set its size.
    Idempotent; a concurrent creator is fine."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    sizes = names if isinstance(names, dict) else dict.fromkeys(names, 1)
    with get_client(sync_client=True) as client:
        for name, size in sizes.items():
            try:
                existing = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                existing = None
            if existing is None:
                try:
                    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=size))
                except ObjectAlreadyExists:
                    pass  # another run created it meanwhile
            elif existing.limit != size or not existing.active:
                from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=size, active=True))


def _holder():
    """This flow run as the lease's holder (what the UI shows), when there is one."""
    try:
        from prefect.client.schemas.objects import ConcurrencyLeaseHolder
        from prefect.runtime import flow_run

        run_id = flow_run.get_id()
        return ConcurrencyLeaseHolder(type="flow_run", id=run_id) if run_id else None
    except Exception:  # no run context (a plain script): the lease simply has no named holder
        return None


@contextmanager
def site_lock(sites: Iterable[str], job: str, *, hosts: Iterable = (), host_files: bool = False,
              wait_seconds: float | None = None, lease_seconds: float = LEASE_SECONDS,
              logger: logging.Logger | None = None) -> Iterator[LockInfo]:
    """Hold the locks of `sites` and a slot of each host in `hosts` (Server blocks: the hosts the run works
    on) for the block's duration, waiting up to `wait_seconds` for them (by default wait_limit()). With
    `host_files`, also the one writer's lock of each host's shared files (provisioning, site removal).

    Raises SiteBusy (one sentence, nothing changed) when another run holds one of them longer.
    """
    from prefect.concurrency.sync import concurrency

    wanted = to_acquire(sites)
    needed = to_acquire(wanted, _HELD.get())
    hosts = list(hosts)
    wanted_hosts = {**host_limits(hosts), **(host_files_limits(hosts) if host_files else {})}
    host_sizes = {n: k for n, k in wanted_hosts.items() if n not in _HELD_HOSTS.get()}
    if not needed and not host_sizes:  # nothing to lock, or this run already holds it all (a flow in a flow)
        yield LockInfo(wanted, 0.0, job)
        return
    names = [lock_name(s) for s in needed]
    wait_seconds = wait_limit() if wait_seconds is None else wait_seconds
    _ensure_limits(names)
    _ensure_limits(host_sizes)
    names += sorted(host_sizes)
    started = time.monotonic()
    acquired = False
    try:
        with concurrency(names, occupy=1, timeout_seconds=wait_seconds, lease_duration=lease_seconds, strict=True,
                         holder=_holder(), raise_on_lease_renewal_failure=False):
            acquired = True
            info = LockInfo(needed, time.monotonic() - started, job)
            if logger is not None:
                logger.info(info.note or held_sentence(needed, host_sizes, job))
            token = _HELD.set(_HELD.get() | set(needed))
            host_token = _HELD_HOSTS.set(_HELD_HOSTS.get() | set(host_sizes))
            try:
                yield info
            finally:
                _HELD_HOSTS.reset(host_token)
                _HELD.reset(token)
    except TimeoutError:
        if acquired:
            raise  # the work itself timed out: not a lock problem
        raise SiteBusy(busy_sentence(needed, time.monotonic() - started, job, hosts=host_sizes)) from None
