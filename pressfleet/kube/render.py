"""A site's own Kustomize overlay (pure): its namespace, domain, images, database and sizes from its block, on
top of one of the overlays shipped in deployments/kubernetes (staging, production, external-db)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from pressfleet.paths import ROOT
from pressfleet.validate import InvalidInput, hostname

SHIPPED = ROOT / "deployments" / "kubernetes"
ENVIRONMENTS = ("staging", "production")
IMAGES = ("pressfleet/wordpress-php", "pressfleet/wordpress-nginx", "pressfleet/redis", "pressfleet/mariadb")


@dataclass(frozen=True)
class KubeOptions:
    environment: str = "production"
    image_tag: str = "latest"
    registry: str | None = None  # e.g. registry.example.com/team; None: the images' own names
    external_db: str | None = None  # a managed database's address (IPv4): the in-cluster MariaDB is left out
    uploads_gi: int = 10

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise InvalidInput(f"environment {self.environment!r}: use {' or '.join(ENVIRONMENTS)}")
        if not self.image_tag.replace(".", "").replace("-", "").replace("_", "").isalnum() or len(self.image_tag) > 128:
            raise InvalidInput(f"{self.image_tag!r} is not an image tag (letters, digits, . - _)")
        if self.registry is not None:
            host, _, path = self.registry.partition("/")
            hostname(host.split(":")[0])
            if path and not all(p.replace("-", "").replace("_", "").replace(".", "").isalnum() for p in path.split("/")):
                raise InvalidInput(f"{self.registry!r} is not a registry such as registry.example.com/team")
        if self.external_db is not None:
            try:
                ipaddress.IPv4Address(self.external_db)
            except ValueError:
                raise InvalidInput(f"{self.external_db!r}: give the external database's IPv4 address "
                                   "(the network policy opens 3306 to it alone)") from None
        if not 1 <= self.uploads_gi <= 10000:
            raise InvalidInput("uploads volume: 1 to 10000 GiB")


def dns_name(site_name: str) -> str:
    """A Kubernetes name (DNS-1123 label) for a site name (underscores become dashes)."""
    return site_name.replace("_", "-")


def _dump_all(docs: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def site_overlay(site, options: KubeOptions) -> dict[str, str]:
    """{relative path: text} of SITE's overlay folder `site/` (it refers to ../overlays/ENV, which `files`
    copies beside it). SITE is a SiteConfig."""
    ns = f"pressfleet-{dns_name(site.name)}"
    base = "external-db" if options.external_db else options.environment
    if options.external_db and options.environment != "production":
        raise InvalidInput("an external database is offered with the production overlay")
    hosts = [site.domain, *site.aliases]
    images = []
    for image in IMAGES:
        entry = {"name": image, "newTag": options.image_tag}
        if options.registry:
            entry["newName"] = f"{options.registry}/{image.split('/', 1)[1]}"
        images.append(entry)
    literals = [f"WP_HOME=https://{site.domain}", f"DB_NAME={site.name}", f"DB_USER={site.name}",
                f"DB_HOST={options.external_db or 'mariadb'}", f"WP_TABLE_PREFIX={site.table_prefix}",
                f"PHP_MEMORY_LIMIT={site.php_memory_limit_mb}M", f"UPLOAD_MAX_MB={site.upload_max_mb}"]
    kustomization = {
        "namespace": ns,
        "bases": [f"../overlays/{base}"],
        "commonLabels": {"app.kubernetes.io/instance": dns_name(site.name)},
        "images": images,
        "configMapGenerator": [{"name": "wordpress-settings", "behavior": "merge", "literals": literals}],
        "patchesStrategicMerge": ["site.yaml"],
    }
    php_limit = max(512, 2 * site.php_memory_limit_mb)
    patches = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {
            "name": "wordpress",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": f"{site.upload_max_mb}m"}},
         "spec": {"tls": [{"hosts": hosts, "secretName": "wordpress-tls"}],
                  "rules": [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                      "service": {"name": "wordpress", "port": {"name": "http"}}}}]}} for h in hosts]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wordpress"},
         "spec": {"template": {"spec": {"containers": [
             {"name": "php-fpm", "resources": {"limits": {"memory": f"{php_limit}Mi"}}}]}}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "wordpress-uploads"},
         "spec": {"resources": {"requests": {"storage": f"{options.uploads_gi}Gi"}}}},
    ]
    if options.external_db:
        patches.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "wordpress"},
                        "spec": {"egress": [
                            {"to": [{"ipBlock": {"cidr": f"{options.external_db}/32"}}],
                             "ports": [{"protocol": "TCP", "port": 3306}]},
                            {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}],
                             "ports": [{"protocol": "TCP", "port": 6379}]},
                            {"ports": [{"protocol": "TCP", "port": 443}]}]}})
    head = (f"# {site.domain}: written by `pressfleet kube render {site.name}` from its block; render again after\n"
            f"# changing the block. Build with `kubectl kustomize site` (or `kubectl apply -k site`).\n")
    return {"site/kustomization.yaml": head + yaml.safe_dump(kustomization, sort_keys=False),
            "site/site.yaml": _dump_all(patches)}


def shipped_files() -> dict[str, str]:
    """The base and overlays of deployments/kubernetes, as {relative path: text}."""
    return {p.relative_to(SHIPPED).as_posix(): p.read_text()
            for p in sorted(SHIPPED.rglob("*.yaml")) if p.is_file()}


def files(site, options: KubeOptions) -> dict[str, str]:
    """Everything a site's folder needs: the shipped base and overlays, and the site's own overlay."""
    return {**shipped_files(), **site_overlay(site, options)}


def write(folder: Path, rendered: dict[str, str]) -> list[Path]:
    written = []
    for rel, text in rendered.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
