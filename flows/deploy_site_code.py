"""Deploy a site's plugin or theme from its git repository, and roll it back.

`deploy-site-code`: the repository is fetched at the ref on the machine running the flow (a ref it does not
have, a link out of its tree or a submodule stop the run before the host is touched) and built there
(`composer install --no-dev` with scripts and plugins off, when it has a composer.json). The built tree is
uploaded to a new release folder on the site's host, root's files that the site's PHP reads and cannot change.
The site is checked (home page, a few sitemap pages, PHP's error log), the live link is switched to the new
release in one rename, PHP-FPM reloads gracefully (running requests finish) and the page cache is emptied; the
site is checked again. A page that answered 2xx and no longer does, or a new PHP fatal error, switches the link
back to the release that was live (or takes the component out, on a first deploy), and the run fails naming
what broke. The last `keep` releases stay on the host for `rollback-site-code`.

`rollback-site-code`: the live link goes back to the release before the current one (or the one named), with
the same reload, cache purge and checks.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Literal, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from flows.standby import site_block
from pressfleet import validate
from pressfleet.backup.targets import server_of
from pressfleet.deploy import releases as rel
from pressfleet.deploy import source
from pressfleet.fleet.locks import site_lock
from pressfleet.updates.plan import regressions
from tasks import deploy as dep
from tasks import updates
from tasks.common import connected

CHECK_PAGES = 3


class DeployFailed(RuntimeError):
    """The new release broke the site: the one that was live is back (the message says what broke)."""


@task(name="build-release", cache_policy=NONE)
def build_release(repo: str, ref: str, slug: Optional[str], workdir: str) -> source.Built:
    """The repository at REF fetched, checked and built on this machine."""
    return source.prepare(repo, ref, Path(workdir), slug)


def _checked(conn, config, paths):
    return updates.check_site(conn, config, paths)


def _go_live(conn, config, kind: str, slug: str, rid: str) -> list[str]:
    changed = dep.switch(conn, config, kind, slug, rid)
    # the realpath and OPcache of every worker still name the old release's files: a graceful reload drops them
    updates.reload_php(conn, config)
    return changed


def _activate(conn, config, kind: str, slug: str) -> str:
    if kind == "plugin":
        out = updates.bootstrap(conn, config, "activate", {"plugins": [slug]})
    else:
        out = updates.bootstrap(conn, config, "switch-theme", {"theme": slug})
    if out.get("error"):
        raise DeployFailed(f"WordPress would not activate {kind} {slug}: {out['error']}")
    return "activated" if out.get("activated") or out.get("was") not in (None, slug) else "already active"


def _markdown(r: dict) -> str:
    lines = [f"# {r['action']} of {r['kind']} {r['slug']} on {r['domain']}", "",
             f"- release: `{r['release']}`" + (f" (was `{r['previous']}`)" if r.get("previous") else " (first)"),
             f"- result: **{r['result']}**"]
    for key in ("source", "switch_seconds", "files", "pruned", "before", "after", "broke"):
        if r.get(key) not in (None, [], ""):
            lines.append(f"- {key.replace('_', ' ')}: {r[key]}")
    return "\n".join(lines)


def _pages(checks) -> str:
    return ", ".join(f"{p.url} {p.status}" for p in checks.pages)


@flow(name="deploy-site-code")
def deploy_site_code(site: str, repo: str, ref: str = "main", slug: Optional[str] = None, activate: bool = False,
                     keep: int = rel.DEFAULT_KEEP) -> dict:
    """Deploy REPO at REF (a plugin or theme; SLUG its folder, by default the repository's name) to SITE as a new
    release, switched live atomically, checked, rolled back by itself when the checks fail; keep the last KEEP."""
    log = get_run_logger()
    repo, ref = validate.git_repo(repo), validate.git_ref(ref)
    if slug:
        validate.component_slug(slug)
    if not 1 <= keep <= 50:
        raise validate.InvalidInput(f"keep {keep} releases? Use 1 to 50.")
    block = site_block(site)
    config, server = block.config(), server_of(block)
    with tempfile.TemporaryDirectory(prefix="pressfleet-deploy-") as work:
        built = build_release(repo, ref, slug, work)
        log.info("built %s", built.summary())
        with site_lock([config.name], "deploy-site-code", hosts=[server]), connected(server) as conn:
            updates.ensure_bootstrap(conn)
            host = dep.on_host(conn, config, built.kind, built.slug)
            if host.link == "folder":
                raise validate.InvalidInput(
                    f"{config.domain} already has a {built.kind} folder {built.slug} that pressfleet did not deploy: "
                    f"remove it (or deploy under another --slug); nothing was changed")
            paths = updates.sitemap_paths(conn, config, CHECK_PAGES)
            before = _checked(conn, config, paths)
            rid = rel.release_id(built.commit, taken=host.releases)
            files = dep.receive(conn, config, built.kind, built.slug, rid, source.tar_bytes(built.folder))
            started = time.monotonic()
            _go_live(conn, config, built.kind, built.slug, rid)
            switch_seconds = round(time.monotonic() - started, 3)
            log.info("release %s is live (%s files; switched in %.3f s)", rid, files, switch_seconds)
            broke: list[str] = []
            try:
                if activate:
                    log.info("%s %s: %s", built.kind, built.slug, _activate(conn, config, built.kind, built.slug))
            except Exception as exc:  # noqa: BLE001 - a failed activation is a failed check
                broke.append(str(exc))
            after = _checked(conn, config, paths)
            broke += regressions(before, after)
            result = {"action": "deploy", "site": config.name, "domain": config.domain, "kind": built.kind,
                      "slug": built.slug, "release": rid, "previous": host.current, "source": built.summary(),
                      "files": files, "switch_seconds": switch_seconds, "before": _pages(before),
                      "after": _pages(after), "broke": broke}
            if broke:
                if host.current:
                    _go_live(conn, config, built.kind, built.slug, host.current)
                else:
                    if built.kind == "plugin":
                        updates.bootstrap(conn, config, "deactivate", {"plugins": [built.slug]})
                    dep.unlink(conn, config, built.kind, built.slug)
                    updates.reload_php(conn, config)
                dep.remove(conn, config, built.kind, built.slug, [rid])
                back = _checked(conn, config, paths)
                result.update(result="rolled back", after_rollback=_pages(back))
                create_markdown_artifact(_markdown(result), key=f"deploy-{config.name.replace('_', '-')}")
                raise DeployFailed(f"release {rid} of {built.kind} {built.slug} broke {config.domain} "
                                   f"({'; '.join(broke)}): " + (f"release {host.current} is live again"
                                                                if host.current else "it was taken out again"))
            now = dep.on_host(conn, config, built.kind, built.slug)
            result["pruned"] = dep.remove(conn, config, built.kind, built.slug, rel.to_prune(now.releases, rid, keep))
            result["result"] = "live"
    create_markdown_artifact(_markdown(result), key=f"deploy-{config.name.replace('_', '-')}")
    return result


def _component(conn, config, kind: Optional[str], slug: Optional[str]) -> tuple[str, str]:
    found = dep.deployed_components(conn, config)
    chosen = [(k, s) for k, s in found if (slug is None or s == slug) and (kind is None or k == kind)]
    if len(chosen) == 1:
        return chosen[0]
    what = ", ".join(f"{k} {s}" for k, s in found) or "none"
    if not chosen:
        raise rel.ReleaseError(f"{config.domain} has no deployed {kind or 'plugin or theme'} "
                               f"{slug or ''} (deployed: {what})".replace("  ", " "))
    raise rel.ReleaseError(f"{config.domain} has several deployed components ({what}): name one with --slug")


@flow(name="rollback-site-code")
def rollback_site_code(site: str, slug: Optional[str] = None, kind: Optional[Literal["plugin", "theme"]] = None,
                       to: Optional[str] = None) -> dict:
    """Switch SITE's deployed plugin or theme back to its previous release (or release TO), then check the site."""
    log = get_run_logger()
    if slug:
        validate.component_slug(slug)
    if to is not None and not rel.RELEASE_ID.fullmatch(to):
        raise validate.InvalidInput(f"{to!r} is not a release id such as 20261203T171500Z-0123456789ab")
    block = site_block(site)
    config, server = block.config(), server_of(block)
    with site_lock([config.name], "rollback-site-code", hosts=[server]), connected(server) as conn:
        kind, slug = _component(conn, config, kind, slug)
        host = dep.on_host(conn, config, kind, slug)
        target = rel.rollback_target(host, to)
        paths = updates.sitemap_paths(conn, config, CHECK_PAGES)
        started = time.monotonic()
        _go_live(conn, config, kind, slug, target)
        switch_seconds = round(time.monotonic() - started, 3)
        after = _checked(conn, config, paths)
        broken = [f"{p.url} answered {p.status}" for p in after.pages if not 200 <= p.status < 300]
        log.info("%s %s: release %s is live again (was %s)", kind, slug, target, host.current)
    result = {"action": "rollback", "site": config.name, "domain": config.domain, "kind": kind, "slug": slug,
              "release": target, "previous": host.current, "switch_seconds": switch_seconds,
              "after": _pages(after), "broke": broken, "result": "live" if not broken else "live, but pages fail"}
    create_markdown_artifact(_markdown(result), key=f"rollback-{config.name.replace('_', '-')}")
    if broken:
        raise DeployFailed(f"release {target} is live again on {config.domain}, but {'; '.join(broken)}")
    return result
