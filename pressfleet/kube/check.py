"""Rendered manifests built with kubectl kustomize and checked: every object against the Kubernetes JSON
schemas of a stated version (kubernetes-validate, strict: an unknown field fails), and pressfleet's rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

KUBERNETES_VERSION = "1.30.0"
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|SALT|TOKEN|(?:^|_)KEY$", re.I)
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


class ManifestError(RuntimeError):
    """The manifests do not build, or break a schema or a rule (the message lists what)."""


def build(folder: Path) -> list[dict]:
    """`kubectl kustomize FOLDER`, parsed."""
    if shutil.which("kubectl") is None:
        raise ManifestError("kubectl is not installed (Debian: apt-get install kubernetes-client)")
    done = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        errors = [ln for ln in done.stderr.splitlines() if "Warning" not in ln]
        raise ManifestError(f"kubectl kustomize {folder} failed: {' '.join(errors)[-500:]}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def schema_errors(objects: list[dict], version: str = KUBERNETES_VERSION) -> list[str]:
    import kubernetes_validate

    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {exc.message} "
                          f"at {'.'.join(str(p) for p in exc.path)}")
    return errors


def _containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def rule_errors(objects: list[dict]) -> list[str]:
    """pressfleet's rules: no Secret written in the manifests and no secret-looking env value inlined; every
    workload container has requests and limits, a readiness and a liveness probe, and cannot gain privileges."""
    errors = []
    for obj in objects:
        kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
        where = f"{kind}/{name}"
        if kind == "Secret":
            errors.append(f"{where}: a Secret is written into the manifests (reference one created apart)")
        if kind == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if _SECRET_NAME.search(key):
                    errors.append(f"{where}: {key} looks like a secret in a ConfigMap")
        if kind not in _WORKLOADS:
            continue
        for c in _containers(obj):
            cw = f"{where} container {c.get('name')}"
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                errors.append(f"{cw}: resources requests and limits are not both set")
            if c not in obj["spec"]["template"]["spec"].get("initContainers", []):
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in c:
                        errors.append(f"{cw}: no {probe}")
            if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                errors.append(f"{cw}: allowPrivilegeEscalation is not false")
            for env in c.get("env", []):
                if _SECRET_NAME.search(env.get("name", "")) and "value" in env:
                    errors.append(f"{cw}: {env['name']} is inlined (use valueFrom.secretKeyRef)")
    return errors


def check(folder: Path, version: str = KUBERNETES_VERSION) -> list[dict]:
    """Build FOLDER and check it; returns the objects, or raises ManifestError listing every problem."""
    objects = build(folder)
    problems = schema_errors(objects, version) + rule_errors(objects)
    if problems:
        raise ManifestError(f"{len(problems)} problem(s) in {folder}: " + "; ".join(problems))
    return objects
