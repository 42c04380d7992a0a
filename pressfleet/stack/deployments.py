"""prefect.yaml and deployments/ put together for one environment: the file `prefect deploy` reads.

prefect.yaml says what each deployment runs; beside it, deployments/ says when and how:

- `schedules.yaml`: every scheduled deployment's schedules (all environments);
- `<env>.yaml` (lab, production): per deployment, `parameters` merged over the deployment's, `schedules`
  replacing those of schedules.yaml, `job_variables` merged over the work pool's, `tags` added;
- `work-pool.json`: the process work pool's base job template (`pressfleet.stack.control.ensure_work_pool` applies it).

Prefect 3.9 has no include between deployment files (YAML anchors and `{{ }}` work within one file), so
`compose()` merges them, as a pure function of the three parsed files; a name or key that matches nothing is
refused with one sentence before anything is deployed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from pressfleet.validate import InvalidInput

DEFAULT_ENVIRONMENT = "lab"
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_OVERRIDES = {"parameters", "schedules", "job_variables", "tags"}


def environment() -> str:
    """The environment to deploy: PRESSFLEET_ENV, else lab."""
    return os.environ.get("PRESSFLEET_ENV") or DEFAULT_ENVIRONMENT


def deployments_dir(prefect_file: Path) -> Path:
    return Path(prefect_file).resolve().parent / "deployments"


def environments(folder: Path) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.yaml") if p.stem != "schedules")


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML: {exc}") from None


def compose(project: dict, schedules: dict, env: dict, *, env_name: str = "") -> dict:
    """The prefect.yaml content for one environment (a new dict; the inputs are left alone)."""
    out = json.loads(json.dumps(project))  # unshares the YAML anchors (one work_pool dict per deployment)
    deps = out.get("deployments") or []
    by_name: dict[str, dict] = {}
    for d in deps:
        if d.get("name") in by_name:
            raise InvalidInput(f"prefect.yaml defines deployment {d.get('name')!r} twice")
        by_name[d.get("name")] = d
    where = f"deployments/{env_name}.yaml" if env_name else "the environment file"

    def named(name: str, source: str) -> dict:
        if name not in by_name:
            raise InvalidInput(f"{source} names deployment {name!r}, which prefect.yaml does not define "
                               f"(it has: {', '.join(sorted(by_name))})")
        return by_name[name]

    table = (schedules or {}).get("schedules") or {}
    if not isinstance(table, dict):
        raise InvalidInput("deployments/schedules.yaml must map deployment names to lists of schedules")
    for d in deps:
        d["schedules"] = []
    for name, entries in table.items():
        if not isinstance(entries, list):
            raise InvalidInput(f"deployments/schedules.yaml: the schedules of {name!r} must be a list")
        named(name, "deployments/schedules.yaml")["schedules"] = json.loads(json.dumps(entries))

    unknown = set(env or {}) - {"description", "deployments"}
    if unknown:
        raise InvalidInput(f"{where} has unknown key(s) {', '.join(sorted(unknown))}: "
                           "only description and deployments")
    for name, over in ((env or {}).get("deployments") or {}).items():
        d = named(name, where)
        bad = set(over or {}) - _OVERRIDES
        if bad:
            raise InvalidInput(f"{where}: {name!r} sets {', '.join(sorted(bad))}; an environment may set only "
                               f"{', '.join(sorted(_OVERRIDES))}")
        over = json.loads(json.dumps(over or {}))
        if "parameters" in over:
            d["parameters"] = {**(d.get("parameters") or {}), **over["parameters"]}
        if "schedules" in over:
            d["schedules"] = over["schedules"]
        if "job_variables" in over:
            pool = d.setdefault("work_pool", {})
            pool["job_variables"] = {**(pool.get("job_variables") or {}), **over["job_variables"]}
        if "tags" in over:
            d["tags"] = list(d.get("tags") or []) + [t for t in over["tags"] if t not in (d.get("tags") or [])]
    return out


def compose_files(prefect_file: Path, env_name: str | None = None) -> dict:
    """compose() of prefect.yaml and its deployments/ folder for `env_name` (default: environment())."""
    env_name = env_name or environment()
    if not ENV_NAME.match(env_name):
        raise InvalidInput(f"environment {env_name[:40]!r} is not a name (lower-case letters, digits, dashes)")
    folder = deployments_dir(prefect_file)
    env_file = folder / f"{env_name}.yaml"
    if not env_file.is_file():
        raise InvalidInput(f"no environment {env_name!r}: {env_file} does not exist "
                           f"(there are: {', '.join(environments(folder)) or 'none'})")
    sched = folder / "schedules.yaml"
    return compose(_load(prefect_file), _load(sched) if sched.is_file() else {}, _load(env_file), env_name=env_name)


def render(prefect_file: Path, env_name: str | None = None) -> str:
    env_name = env_name or environment()
    head = (f"# Generated by pressfleet from {Path(prefect_file).name} and deployments/ for environment "
            f"{env_name!r}: edit those, not this file.\n")
    return head + yaml.safe_dump(compose_files(prefect_file, env_name), sort_keys=False, width=110)


def write(prefect_file: Path, out_dir: Path, env_name: str | None = None) -> Path:
    """Write the composed file to out_dir/prefect.<env>.yaml (owner-only) and return its path."""
    env_name = env_name or environment()
    text = render(prefect_file, env_name)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = out_dir / f"prefect.{env_name}.yaml"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
