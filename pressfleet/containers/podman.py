"""podman as it runs here (Debian 12's podman 4.3): the runc runtime, the cgroupfs manager, no default ulimits
(crun and the default ulimits fail on this kernel's hybrid cgroups), events in a file (PID 1 may not be
systemd), and image storage of pressfleet's own under the state folder (a test's state holds its own images,
never the operator's). Never podman's default network: its CNI bridge switches IP forwarding on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pressfleet.paths import state_dir


class PodmanError(RuntimeError):
    """A podman command failed (the message ends with what podman said)."""


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    size: int
    layers: int
    user: str
    healthcheck: tuple[str, ...]
    labels: dict

    @property
    def size_mb(self) -> float:
        return round(self.size / 1e6, 1)


class Podman:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else state_dir() / "containers"
        self.conf = self.root / "containers.conf"
        # podman refuses a run root longer than 50 characters: one per storage, named by its path's hash
        self.runroot = Path("/run/pressfleet-podman") / hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]

    def _ready(self) -> None:
        if shutil.which("podman") is None:
            raise PodmanError("podman is not installed (Debian: apt-get install podman buildah runc; `make setup`)")
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        self.runroot.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.conf.exists():
            self.conf.write_text("[containers]\ndefault_ulimits = []\n[engine]\nevents_logger = \"file\"\n")

    def cmd(self, *args: str) -> list[str]:
        return ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--root", str(self.root / "storage"), "--runroot", str(self.runroot), *args]

    def run(self, *args: str, stdin=None, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess:
        self._ready()
        env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}
        done = subprocess.run(self.cmd(*args), stdin=stdin, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
        if check and done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-4:]
            raise PodmanError(f"podman {args[0]} failed: {' / '.join(tail)}")
        return done

    def exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def import_tree(self, tree: Path, ref: str) -> None:
        """A root file system folder as an image (tar piped to `podman import`)."""
        self._ready()
        env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}
        tar = subprocess.Popen(["tar", "-C", str(tree), "--exclude=./.pressfleet-template", "-c", "."],
                               stdout=subprocess.PIPE)
        done = subprocess.run(self.cmd("import", "-", ref), stdin=tar.stdout, capture_output=True, text=True,
                              env=env, timeout=900, check=False)
        tar.stdout.close()
        tar.wait()
        if done.returncode != 0 or tar.returncode != 0:
            raise PodmanError(f"podman import of {tree} failed: {done.stderr.strip()[-300:]}")

    def inspect(self, ref: str) -> ImageInfo:
        data = json.loads(self.run("image", "inspect", ref).stdout)[0]
        cfg = data.get("Config") or {}
        health = (data.get("Healthcheck") or cfg.get("Healthcheck") or {}).get("Test") or []
        return ImageInfo(id=data["Id"], tags=tuple(data.get("RepoTags") or ()), size=int(data.get("Size", 0)),
                         layers=len((data.get("RootFS") or {}).get("Layers") or []), user=cfg.get("User", ""),
                         healthcheck=tuple(health), labels=dict(data.get("Labels") or cfg.get("Labels") or {}))

    def images(self, prefix: str = "localhost/pressfleet/") -> list[ImageInfo]:
        out = self.run("images", "--format", "{{.Id}} {{.Repository}}:{{.Tag}}").stdout.split("\n")
        refs = sorted({ln.split()[1] for ln in out if ln.strip() and ln.split()[1].startswith(prefix)})
        return [self.inspect(r) for r in refs]
