"""Start, stop and inspect the local Prefect stack (server + work pool + deployments + worker).

Plain functions for the CLI (`make demo`) and the tests::

    from pressfleet.stack.control import StackConfig, up, down, status
    st = up()            # idempotent: reuses a live server/worker, (re)deploys prefect.yaml
    print(st.ui_url)
    down()               # SIGTERM worker then server, by recorded PID only

Every prefect process gets the environment from `prefect_env(cfg)`: its own PREFECT_HOME (nothing
lands in ~/.prefect), the API/UI URLs for the configured port, analytics off, a 1 s worker poll and
persisted results; and umask 077: Prefect's database holds every block's secrets, and flow runs (children
of the worker) write backups, reports and the metrics store under the state folder. `up()` also takes
group and other bits off whatever is already in the state folder. Deployments are prefect.yaml put
together with deployments/ for one environment (`pressfleet.stack.deployments`, PRESSFLEET_ENV, default lab). The PIDs live in `<run_dir>/server.pid` and `<run_dir>/worker.pid`, the logs in
`<run_dir>/server.log` and `<run_dir>/worker.log`.

This module deliberately does not import prefect: the CLI stays fast and the stack's settings are
never mixed with the calling process's settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pressfleet.stack import deployments as deployment_files
from pressfleet.paths import PRIVATE_UMASK, ROOT, private_dirs, secure_tree, state_dir

SERVER = "server"
WORKER = "worker"
WATCHER = "watcher"  # pressfleet.watch: probes and alerts every 30 s
MAILBOX = "mailbox"  # pressfleet.stack.mailbox: the demo's local SMTP server
# what each process's command line holds (a PID file naming another program is stale)
_MARKERS = {SERVER: b"prefect", WORKER: b"prefect", WATCHER: b"pressfleet.watch", MAILBOX: b"pressfleet.stack.mailbox"}


class StackError(RuntimeError):
    """The stack could not be brought up (the message says why and quotes the relevant log)."""


def _default_port() -> int:
    return int(os.environ.get("PRESSFLEET_PREFECT_PORT", "4200"))


def _default_db_url() -> str | None:
    return os.environ.get("PRESSFLEET_PREFECT_DATABASE_URL") or None


@dataclass
class StackConfig:
    home: Path = field(default_factory=lambda: state_dir() / "prefect")
    host: str = "127.0.0.1"
    port: int = field(default_factory=_default_port)
    database_url: str | None = field(default_factory=_default_db_url)
    work_pool: str = "pressfleet"
    run_dir: Path = field(default_factory=lambda: state_dir() / "stack")
    prefect_file: Path = field(default_factory=lambda: ROOT / "prefect.yaml")
    blocks_dir: Path = field(default_factory=lambda: ROOT / "blocks")
    environment: str = field(default_factory=deployment_files.environment)  # deployments/<environment>.yaml
    state: Path = field(default_factory=state_dir)  # secured at start-up when home and run_dir are inside it
    server_timeout: float = 120.0  # seconds until /api/health must answer
    worker_timeout: float = 60.0  # seconds until the new worker must show up in the pool
    cli_timeout: float = 300.0  # any single `prefect ...` command

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.run_dir = Path(self.run_dir).resolve()
        self.prefect_file = Path(self.prefect_file).resolve()
        self.blocks_dir = Path(self.blocks_dir).resolve()
        self.state = Path(self.state).resolve()
        self.port = int(self.port)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def ui_url(self) -> str:
        return self.base_url

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    @property
    def deployments_dir(self) -> Path:
        return deployment_files.deployments_dir(self.prefect_file)

    @property
    def pool_template(self) -> Path:
        return self.deployments_dir / "work-pool.json"


@dataclass
class StackStatus:
    api_url: str
    ui_url: str
    healthy: bool
    pids: dict[str, int | None]
    home: Path
    run_dir: Path
    work_pool: str
    database: str  # "sqlite (<home>)" or the URL without its password

    def __str__(self) -> str:
        def pid(name: str) -> str:
            p = self.pids.get(name)
            return str(p) if p else "not running"

        return (
            f"Prefect API  {self.api_url} ({'healthy' if self.healthy else 'DOWN'})\n"
            f"Prefect UI   {self.ui_url}\n"
            f"server pid   {pid(SERVER)}\n"
            f"worker pid   {pid(WORKER)} (pool {self.work_pool})\n"
            f"watcher pid  {pid(WATCHER)}\n"
            f"database     {self.database}\n"
            f"PREFECT_HOME {self.home}\n"
            f"logs, pids   {self.run_dir}"
        )


# --------------------------------------------------------------------------------------------
# environment


def prefect_env(cfg: StackConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every prefect process of this stack (server, CLI calls, worker)."""
    env = dict(os.environ if base is None else base)
    # a PREFECT_API_KEY or a profile from the caller's shell must not point us at another server
    for key in ("PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    env.update(
        {
            "PREFECT_HOME": str(cfg.home),
            "PREFECT_API_URL": cfg.api_url,
            "PREFECT_UI_API_URL": cfg.api_url,
            "PREFECT_UI_URL": cfg.ui_url,
            "PREFECT_SERVER_API_HOST": cfg.host,
            "PREFECT_SERVER_API_PORT": str(cfg.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_CLI_PROMPT": "false",
            "PRESSFLEET_ROOT": str(ROOT),
            "PRESSFLEET_STATE": str(cfg.state),  # the worker's flows and the watcher share the alert store
            "PYTHONUNBUFFERED": "1",
        }
    )
    if cfg.database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = cfg.database_url
    return env


def use_in_this_process(cfg: StackConfig, *, api: bool) -> None:
    """Point this process's Prefect client at the stack (before prefect is imported): its PREFECT_HOME and,
    with `api`, its server."""
    env = prefect_env(cfg)
    keys = ["PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "PREFECT_RESULTS_PERSIST_BY_DEFAULT"]
    if api:
        keys += ["PREFECT_API_URL", "PREFECT_UI_URL"]
    for key in keys:
        os.environ[key] = env[key]


def _prefect_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("prefect")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "prefect"]


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# --------------------------------------------------------------------------------------------
# processes


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _reap(pid: int) -> None:
    """Collect our own exited children so they do not linger as zombies."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _is_ours(pid: int, cfg: StackConfig, name: str = SERVER) -> bool:
    """True if PID is a live process NAME of *this* stack (not a zombie, not a reused PID)."""
    _reap(pid)
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if _MARKERS.get(name, b"prefect") not in cmdline:
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return True  # cannot read another user's environ: the command line has to do
    return f"PREFECT_HOME={cfg.home}".encode() in environ


def _live_pid(cfg: StackConfig, name: str) -> int | None:
    """The recorded PID if it is alive and ours; a stale pid file is removed."""
    path = cfg.pid_file(name)
    pid = _read_pid(path)
    if pid is None:
        path.unlink(missing_ok=True)
        return None
    if _is_ours(pid, cfg, name):
        return pid
    path.unlink(missing_ok=True)
    return None


def _alive(pid: int) -> bool:
    _reap(pid)
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _stop_pid(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL (the whole session group if PID leads it).
    Returns True if the process had to be killed."""
    try:
        leads_group = os.getpgid(pid) == pid
    except OSError:
        leads_group = False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.1)
    killed = False
    if _alive(pid):
        killed = True
        try:
            os.killpg(pid, signal.SIGKILL) if leads_group else os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
    if leads_group:
        # leftovers started by it in its own session (e.g. a flow run in flight): same group id
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def _tail(path: Path, lines: int = 40, since: int = 0) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            data = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:]) or "(log is empty)"


def _private_open(path: Path, flags: int):
    return os.fdopen(os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600), "ab" if flags & os.O_APPEND else "w")


def _spawn(cfg: StackConfig, name: str, args: list[str], *, python_module: bool = False) -> subprocess.Popen:
    """Start `prefect ARGS` (or, with python_module, `python -m ARGS`) in its own session, logging to NAME.log."""
    log_path = cfg.log_file(name)
    private_dirs(cfg.run_dir)
    with _private_open(log_path, os.O_WRONLY | os.O_APPEND) as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            ([sys.executable, "-m"] if python_module else _prefect_cmd()) + args,
            env=prefect_env(cfg),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            umask=PRIVATE_UMASK,
        )
    with _private_open(cfg.pid_file(name), os.O_WRONLY | os.O_TRUNC) as fh:
        fh.write(f"{proc.pid}\n")
    return proc


def run_prefect(cfg: StackConfig, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one `prefect ...` command against this stack (cwd ROOT, no prompts, no terminal)."""
    cmd = _prefect_cmd() + list(args)
    try:
        res = subprocess.run(
            cmd,
            env=prefect_env(cfg),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=cfg.cli_timeout,
            umask=PRIVATE_UMASK,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"`prefect {' '.join(args)}` timed out after {cfg.cli_timeout:.0f} s") from exc
    if check and res.returncode != 0:
        out = "\n".join((res.stdout + res.stderr).strip().splitlines()[-40:])
        raise StackError(f"`prefect {' '.join(args)}` failed (exit {res.returncode}):\n{out}")
    return res


# --------------------------------------------------------------------------------------------
# API (plain HTTP; no prefect import)


def _api(cfg: StackConfig, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        cfg.api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def healthy(cfg: StackConfig) -> bool:
    try:
        return _api(cfg, "GET", "/health", timeout=2.0) is True
    except (OSError, ValueError):
        return False


def _port_in_use(cfg: StackConfig) -> bool:
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout=1.0):
            return True
    except OSError:
        return False


def _wait_healthy(cfg: StackConfig, proc: subprocess.Popen | None, pid: int, since: int) -> None:
    deadline = time.monotonic() + cfg.server_timeout
    while time.monotonic() < deadline:
        if healthy(cfg):
            return
        if (proc is not None and proc.poll() is not None) or not _alive(pid):
            cfg.pid_file(SERVER).unlink(missing_ok=True)
            raise StackError(
                f"Prefect server (pid {pid}) exited before {cfg.api_url}/health answered. "
                f"Last lines of {cfg.log_file(SERVER)}:\n{_tail(cfg.log_file(SERVER), since=since)}"
            )
        time.sleep(0.25)
    raise StackError(
        f"Prefect server (pid {pid}) did not answer {cfg.api_url}/health within "
        f"{cfg.server_timeout:.0f} s (it is still running; `down` stops it). "
        f"Last lines of {cfg.log_file(SERVER)}:\n{_tail(cfg.log_file(SERVER), since=since)}"
    )


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------------------------
# steps of up()


def start_server(cfg: StackConfig) -> int:
    """Reuse the recorded server if it is alive and healthy, else start one. Returns its PID."""
    private_dirs(cfg.home)
    private_dirs(cfg.run_dir)
    pid = _live_pid(cfg, SERVER)
    if pid is not None:
        if not healthy(cfg):  # alive but not answering yet (still starting, or migrating)
            _wait_healthy(cfg, None, pid, _log_size(cfg.log_file(SERVER)))
        return pid
    if _port_in_use(cfg):
        raise StackError(
            f"{cfg.host}:{cfg.port} is already in use by a process this stack did not start "
            f"(no live PID in {cfg.pid_file(SERVER)}). Stop it, or pick another port with "
            f"PRESSFLEET_PREFECT_PORT."
        )
    since = _log_size(cfg.log_file(SERVER))
    proc = _spawn(cfg, SERVER, ["server", "start", "--host", cfg.host, "--port", str(cfg.port)])
    _wait_healthy(cfg, proc, proc.pid, since)
    return proc.pid


def ensure_work_pool(cfg: StackConfig) -> None:
    """The process work pool, with deployments/work-pool.json as its base job template when that exists
    (applied again when the pool's template differs from the file)."""
    template = cfg.pool_template if cfg.pool_template.is_file() else None
    try:
        pool = _api(cfg, "GET", f"/work_pools/{cfg.work_pool}")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise StackError(f"reading work pool {cfg.work_pool!r}: HTTP {exc.code}") from exc
        extra = ["--base-job-template", str(template)] if template else []
        run_prefect(cfg, "work-pool", "create", cfg.work_pool, "--type", "process", *extra)
        return
    if template and (pool or {}).get("base_job_template") != json.loads(template.read_text()):
        run_prefect(cfg, "work-pool", "update", cfg.work_pool, "--base-job-template", str(template))


_BLOCK_CLASS = re.compile(r"^class\s+\w+\s*\([^)]*Block[^)]*\)\s*:", re.MULTILINE)


def block_files(cfg: StackConfig) -> list[Path]:
    """blocks/*.py (not __init__ or _private) that define a Block subclass."""
    if not cfg.blocks_dir.is_dir():
        return []
    return [
        p
        for p in sorted(cfg.blocks_dir.glob("*.py"))
        if not p.name.startswith("_") and _BLOCK_CLASS.search(p.read_text(errors="replace"))
    ]


def register_blocks(cfg: StackConfig) -> list[Path]:
    files = block_files(cfg)
    for path in files:
        run_prefect(cfg, "block", "register", "-f", str(path))
    return files


def deployment_file(cfg: StackConfig, prefect_file: Path | None = None) -> Path:
    """The file to deploy: with a deployments/ folder beside the project file, the two put together for
    cfg.environment (written to <run_dir>/prefect.<environment>.yaml); else the project file itself."""
    path = Path(prefect_file or cfg.prefect_file).resolve()
    if not path.is_file():
        raise StackError(f"no deployment file at {path}")
    if not deployment_files.deployments_dir(path).is_dir():
        return path
    try:
        return deployment_files.write(path, cfg.run_dir, cfg.environment)
    except ValueError as exc:  # InvalidInput: one sentence naming the file and the name that matches nothing
        raise StackError(str(exc)) from exc


def deploy(cfg: StackConfig, prefect_file: Path | None = None) -> str:
    """`prefect deploy --all --no-prompt` for the project's deployments; returns the command's output."""
    path = deployment_file(cfg, prefect_file)
    res = run_prefect(cfg, "deploy", "--all", "--no-prompt", "--prefect-file", str(path))
    return res.stdout


def _worker_online(cfg: StackConfig, name: str) -> bool:
    try:
        workers = _api(cfg, "POST", f"/work_pools/{cfg.work_pool}/workers/filter", {})
    except (OSError, ValueError):
        return False
    return any(w.get("name") == name and w.get("status") == "ONLINE" for w in workers or [])


class _PendingWorker:
    """A worker process just spawned, not yet seen online in its pool."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.name = f"pressfleet-{cfg.port}-{uuid.uuid4().hex[:6]}"
        self.since = _log_size(cfg.log_file(WORKER))
        self.proc = _spawn(
            cfg,
            WORKER,
            ["worker", "start", "--pool", cfg.work_pool, "--type", "process", "--name", self.name],
        )

    def wait(self) -> int:
        cfg, proc = self.cfg, self.proc
        log = cfg.log_file(WORKER)
        deadline = time.monotonic() + cfg.worker_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                cfg.pid_file(WORKER).unlink(missing_ok=True)
                raise StackError(
                    f"Prefect worker exited with {proc.returncode}. Last lines of {log}:\n"
                    f"{_tail(log, since=self.since)}"
                )
            if _worker_online(cfg, self.name):
                return proc.pid
            time.sleep(0.25)
        raise StackError(
            f"Prefect worker (pid {proc.pid}) did not join pool {cfg.work_pool!r} within "
            f"{cfg.worker_timeout:.0f} s. Last lines of {log}:\n{_tail(log, since=self.since)}"
        )


def start_worker(cfg: StackConfig) -> int:
    """Reuse the recorded worker if alive, else start one and wait until it heartbeats."""
    pid = _live_pid(cfg, WORKER)
    return pid if pid is not None else _PendingWorker(cfg).wait()


def start_watcher(cfg: StackConfig, *, interval: float | None = None) -> int:
    """Reuse the recorded watcher if alive, else start `python -m pressfleet.watch` against this stack's API."""
    pid = _live_pid(cfg, WATCHER)
    if pid is not None:
        return pid
    args = ["pressfleet.watch"] + (["--interval", str(interval)] if interval else [])
    proc = _spawn(cfg, WATCHER, args, python_module=True)
    time.sleep(0.5)
    if proc.poll() is not None:
        cfg.pid_file(WATCHER).unlink(missing_ok=True)
        raise StackError(f"the watcher exited at once ({proc.returncode}):\n{_tail(cfg.log_file(WATCHER))}")
    return proc.pid


def start_mailbox(cfg: StackConfig, port: int, folder: Path) -> int:
    """Reuse or start the local SMTP server that keeps every mail it gets as a file in FOLDER (the demo's)."""
    pid = _live_pid(cfg, MAILBOX)
    if pid is not None:
        return pid
    proc = _spawn(cfg, MAILBOX, ["pressfleet.stack.mailbox", "--port", str(port), "--folder", str(folder)],
                  python_module=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            cfg.pid_file(MAILBOX).unlink(missing_ok=True)
            raise StackError(f"the mailbox exited ({proc.returncode}):\n{_tail(cfg.log_file(MAILBOX))}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return proc.pid
        time.sleep(0.2)
    raise StackError(f"the mailbox did not listen on 127.0.0.1:{port}:\n{_tail(cfg.log_file(MAILBOX))}")


# --------------------------------------------------------------------------------------------
# public entry points


@contextlib.contextmanager
def _locked(cfg: StackConfig):
    """One up()/down() at a time per run dir (a second `make demo` waits, then reuses)."""
    private_dirs(cfg.run_dir)
    with _private_open(cfg.run_dir / "stack.lock", os.O_WRONLY) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def status(cfg: StackConfig | None = None) -> StackStatus:
    cfg = cfg or StackConfig()
    db = _redact(cfg.database_url) if cfg.database_url else f"sqlite ({cfg.home})"
    return StackStatus(
        api_url=cfg.api_url,
        ui_url=cfg.ui_url,
        healthy=healthy(cfg),
        pids={SERVER: _live_pid(cfg, SERVER), WORKER: _live_pid(cfg, WORKER), WATCHER: _live_pid(cfg, WATCHER)},
        home=cfg.home,
        run_dir=cfg.run_dir,
        work_pool=cfg.work_pool,
        database=db,
    )


def up(
    cfg: StackConfig | None = None,
    *,
    deploy_flows: bool = True,
    worker: bool = True,
    watcher: bool = True,
    log: Callable[[str], None] | None = None,
) -> StackStatus:
    """Bring the stack up; safe to call again (reuses live processes, re-applies pool/blocks/deploy).

    `log` gets one line per step with its duration (the CLI passes print). Raises StackError.
    """
    cfg = cfg or StackConfig()
    with _locked(cfg):
        return _up(cfg, deploy_flows=deploy_flows, worker=worker, watcher=watcher, say=log or (lambda msg: None))


def secure_state(cfg: StackConfig) -> list[str]:
    """Take group and other bits off the state folder (when the stack lives in it) and the stack's folders."""
    roots = [cfg.home, cfg.run_dir]
    if all(cfg.state in (p, *p.parents) for p in roots):
        roots = [cfg.state]
    return [p for root in roots for p in secure_tree(root)]


def _up(cfg: StackConfig, *, deploy_flows: bool, worker: bool, watcher: bool,
        say: Callable[[str], None]) -> StackStatus:
    fixed = secure_state(cfg)
    if fixed:
        say(f"state folder: took group and other access off {len(fixed)} file(s) and folder(s)")
    t = time.monotonic()
    reused = _live_pid(cfg, SERVER) is not None
    pid = start_server(cfg)
    say(f"server {'reused' if reused else 'started'} (pid {pid}) at {cfg.api_url} "
        f"[{time.monotonic() - t:.1f} s]")

    t = time.monotonic()
    ensure_work_pool(cfg)
    say(f"work pool {cfg.work_pool!r} ready [{time.monotonic() - t:.1f} s]")

    # the worker imports prefect (~2 s) while blocks register and flows deploy
    t_worker = time.monotonic()
    worker_pid = _live_pid(cfg, WORKER) if worker else None
    pending = _PendingWorker(cfg) if worker and worker_pid is None else None

    try:
        t = time.monotonic()
        files = register_blocks(cfg)
        say(f"blocks registered from {', '.join(f.name for f in files) or 'no files'} "
            f"[{time.monotonic() - t:.1f} s]")
        if deploy_flows:
            t = time.monotonic()
            deploy(cfg)
            say(f"deployed {cfg.prefect_file.name} for environment {cfg.environment!r} "
                f"[{time.monotonic() - t:.1f} s]")
        if pending is not None:
            worker_pid = pending.wait()
    except BaseException:
        if pending is not None and pending.proc.poll() is None:
            _stop_pid(pending.proc.pid, 10.0)
            cfg.pid_file(WORKER).unlink(missing_ok=True)
        raise
    if worker:
        say(f"worker {'started' if pending else 'reused'} (pid {worker_pid}) on pool "
            f"{cfg.work_pool!r} [{time.monotonic() - t_worker:.1f} s]")
    if watcher:
        t = time.monotonic()
        reused = _live_pid(cfg, WATCHER) is not None
        pid = start_watcher(cfg)
        say(f"watcher {'reused' if reused else 'started'} (pid {pid}): every site and server every 30 s, "
            f"log {cfg.log_file(WATCHER)} [{time.monotonic() - t:.1f} s]")
    return status(cfg)


def down(cfg: StackConfig | None = None, timeout: float = 10.0) -> dict[str, int]:
    """Stop the watcher, the mailbox, the worker, then the server, by their recorded PIDs. Returns {name: pid} stopped."""
    cfg = cfg or StackConfig()
    stopped: dict[str, int] = {}
    with _locked(cfg):
        for name in (WATCHER, MAILBOX, WORKER, SERVER):
            pid = _live_pid(cfg, name)  # removes stale pid files
            if pid is not None:
                _stop_pid(pid, timeout)
                stopped[name] = pid
            cfg.pid_file(name).unlink(missing_ok=True)
    return stopped
