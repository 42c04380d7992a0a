"""Site code (issue 15): a plugin deployed from its git repository at a ref, built with Composer on the control
side, released on the host as root's read-only files, switched atomically with no failed request, rolled back
by itself when a release breaks the site and by hand, old releases pruned; bad refs and repositories refused
before the host is touched."""

from __future__ import annotations

import time

import pytest

from pressfleet.deploy.releases import ReleaseError
from pressfleet.ssh.remote import run
from pressfleet.validate import InvalidInput
from tests.conftest import connect_lab
from tests.sitecode import Probe, plugin_repo

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def code(shared_host, tmp_path_factory):
    """shared_host's second site, the pf-hello repository; the plugin taken out again at the end."""
    from tasks import deploy as dep
    from tasks.updates import bootstrap

    repo = plugin_repo(tmp_path_factory.mktemp("sitecode"))
    site = shared_host.two
    yield site, repo
    cfg = site.config
    with connect_lab(shared_host.host) as conn:
        bootstrap(conn, cfg, "deactivate", {"plugins": ["pf-hello"]})
        dep.unlink(conn, cfg, "plugin", "pf-hello")
        run(conn, ["rm", "-rf", "--", f"{cfg.home}/releases/plugins-pf-hello"])


def _footer(site) -> str:
    body = site.curl("/", "-H", "Cache-Control: no-cache").stdout
    marker = body.rfind("<!-- pf-hello")
    return body[marker:body.find("-->", marker) + 3] if marker >= 0 else ""


def _listing(host, cfg):
    from tasks import deploy as dep

    with connect_lab(host) as conn:
        return dep.on_host(conn, cfg, "plugin", "pf-hello")


def test_a_plugin_is_built_with_composer_released_read_only_and_switched_without_a_failed_request(code, shared_host):
    from flows.deploy_site_code import deploy_site_code

    site, repo = code
    cfg = site.config
    first = deploy_site_code(site=cfg.name, repo=str(repo), ref="v1", activate=True)
    assert first["result"] == "live" and first["previous"] is None and first["kind"] == "plugin"
    assert _footer(site) == "<!-- pf-hello 1.0.0 says hello -->"

    with Probe(cfg.domain, shared_host.host.address) as probe:
        second = deploy_site_code(site=cfg.name, repo=str(repo), ref="main")
    assert second["previous"] == first["release"]
    assert _footer(site) == "<!-- pf-hello 2.0.0 says bonjour -->"
    assert len(probe.codes) >= 5 and set(probe.codes) == {"200"}, probe.codes

    host = _listing(shared_host.host, cfg)
    assert host.releases == (first["release"], second["release"]) and host.current == second["release"]
    live = f"{cfg.home}/releases/plugins-pf-hello/{second['release']}"
    with connect_lab(shared_host.host) as conn:
        assert run(conn, ["readlink", f"{cfg.web_root}/wp-content/plugins/pf-hello"]).stdout.strip() == \
            f"{cfg.home}/releases/plugins-pf-hello/current"
        # Composer's path repository was copied into vendor/, not linked (a link would point at the worker)
        run(conn, ["test", "-f", f"{live}/vendor/pressfleet/greeter/src/Greeter.php"])
        assert run(conn, ["find", live, "-type", "l"]).stdout.strip() == ""
        modes = set(run(conn, ["find", live, "-printf", "%u:%g %m %y\\n"]).stdout.split("\n")) - {""}
        assert modes == {f"root:{cfg.user} 750 d", f"root:{cfg.user} 640 f"}, modes
        # the site's PHP cannot change its own code
        denied = run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c", f"echo x >> {live}/pf-hello.php"], check=False)
        assert not denied.ok and "Permission denied" in denied.stderr
    # nginx serves the release's static files
    assert site.curl("/wp-content/plugins/pf-hello/pf-hello.css").stdout == "/* pf-hello 2.0.0 */\n"


def test_a_release_that_breaks_the_site_is_switched_back_by_itself(code, shared_host):
    from flows.deploy_site_code import DeployFailed, deploy_site_code

    site, repo = code
    cfg = site.config
    before = _listing(shared_host.host, cfg)
    with pytest.raises(DeployFailed, match=r"answered 500.*is live again"):
        deploy_site_code(site=cfg.name, repo=str(repo), ref="v3-broken")
    after = _listing(shared_host.host, cfg)
    assert after.current == before.current and after.releases == before.releases  # the failed one is gone
    assert _footer(site) == "<!-- pf-hello 2.0.0 says bonjour -->"
    assert site.curl("/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"


def test_bad_refs_and_repositories_are_refused_before_the_host_is_touched(code, shared_host, tmp_path):
    from flows.deploy_site_code import deploy_site_code

    site, repo = code
    cfg = site.config
    before = _listing(shared_host.host, cfg)
    with pytest.raises(ReleaseError, match="has no branch, tag or commit 'v9'"):
        deploy_site_code(site=cfg.name, repo=str(repo), ref="v9")
    with pytest.raises(ReleaseError, match=r"passwd is a link to '/etc/passwd', out of the repository"):
        deploy_site_code(site=cfg.name, repo=str(repo), ref="escape")
    with pytest.raises(InvalidInput, match="not a git branch"):
        deploy_site_code(site=cfg.name, repo=str(repo), ref="--upload-pack=touch /tmp/x")
    with pytest.raises(InvalidInput, match="not a git repository"):
        deploy_site_code(site=cfg.name, repo="ext::sh -c touch% /tmp/x", ref="main")
    with pytest.raises(ReleaseError, match="could not fetch"):
        deploy_site_code(site=cfg.name, repo=str(tmp_path / "nothing-here"), ref="main")
    assert _listing(shared_host.host, cfg) == before
    assert _footer(site) == "<!-- pf-hello 2.0.0 says bonjour -->"


def test_rollback_by_hand_and_only_the_newest_releases_are_kept(code, shared_host):
    from flows.deploy_site_code import deploy_site_code, rollback_site_code
    from tests.sitecode import commit, write_release

    site, repo = code
    cfg = site.config
    back = rollback_site_code(site=cfg.name)
    assert _footer(site) == "<!-- pf-hello 1.0.0 says hello -->"
    assert back["release"] == _listing(shared_host.host, cfg).releases[0]
    for n in range(3):
        write_release(repo, f"2.1.{n}", f"hi {n}")
        commit(repo, f"2.1.{n}")
        r = deploy_site_code(site=cfg.name, repo=str(repo), ref="main", keep=3)
    assert _footer(site) == "<!-- pf-hello 2.1.2 says hi 2 -->"
    host = _listing(shared_host.host, cfg)
    assert len(host.releases) == 3 and host.current == r["release"] == host.releases[-1]
    assert r["pruned"], r
    with pytest.raises(ReleaseError, match="is not on the host"):
        rollback_site_code(site=cfg.name, to="20000101T000000Z-000000000000")


def _serve_deploy_flow(api_url: str):
    """The deploy-site-code flow served by a process of its own (what a worker does), talking to the test's API."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.Popen([sys.executable, "-c", "from flows.deploy_site_code import deploy_site_code; "
                             "deploy_site_code.serve(name='deploy-site-code', limit=1)"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_the_generated_pipeline_runs_its_steps_here_through_the_prefect_api(code, shared_host):
    import os
    import subprocess

    import yaml
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.variables import Variable

    from pressfleet.cli.pipeline import baseline_variable
    from pressfleet.pipelines.generate import PipelineSpec, render
    from tests.sitecode import commit, git, write_release, write_tests

    site, repo = code
    staging, production = site.config, shared_host.one.config
    write_release(repo, "4.0.0", "hallo")
    write_tests(repo, "hallo")
    sha = commit(repo, "4.0.0 with its PHPUnit tests")
    spec = PipelineSpec(production_site=production.name, staging_site=staging.name, staging_domain=staging.domain,
                        repo=str(repo), load_seconds=3, load_concurrency=2)
    _, text = render(spec, "github")
    jobs = yaml.safe_load(text)["jobs"]
    commands = [s["run"].replace("${{ github.sha }}", sha) for job in ("test", "staging", "production")
                for s in jobs[job]["steps"] if s.get("run", "").startswith("pressfleet pipeline")]
    api = PREFECT_API_URL.value()
    env = {**os.environ, "PREFECT_API_URL": api, "PRESSFLEET_RESOLVE": shared_host.host.address, "PRESSFLEET_INSECURE": "1"}
    pressfleet = os.path.join(os.path.dirname(os.sys.executable), "pressfleet")

    def step(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-ec", command.replace("pressfleet ", f"{pressfleet} ", 1)], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=900)

    served = _serve_deploy_flow(api)
    try:
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while True:
                try:
                    client.read_deployment_by_name("deploy-site-code/deploy-site-code")
                    break
                except Exception:  # noqa: BLE001 - not registered yet
                    assert time.monotonic() < deadline and served.poll() is None, served.stderr.read() if served.poll() else ""
                    time.sleep(1)
        for command in commands:
            done = step(command)
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
            if " test" in command:
                assert "OK (1 test, 1 assertion)" in done.stdout
        assert _footer(site) == "<!-- pf-hello 4.0.0 says hallo -->"
        assert _listing(shared_host.host, staging).current.endswith(sha[:12])
        assert _listing(shared_host.host, production).current.endswith(sha[:12])
        assert Variable.get(baseline_variable(staging.name)) > 0

        # the gate: a release slower than the last passing one by more than 20% fails the load step
        Variable.set(baseline_variable(staging.name), 0.01, overwrite=True)
        load = step(next(c for c in commands if " load " in c))
        assert load.returncode == 1 and "slower than the last one" in load.stderr, load.stdout + load.stderr
        # and a failing PHPUnit test fails the first step
        write_tests(repo, "not what it says")
        failing = step(commands[0])
        assert failing.returncode == 1 and "PHPUnit failed" in failing.stderr
    finally:
        served.terminate()
        served.wait(timeout=30)
        from tasks import deploy as dep

        with connect_lab(shared_host.host) as conn:
            dep.unlink(conn, production, "plugin", "pf-hello")
            run(conn, ["rm", "-rf", "--", f"{production.home}/releases/plugins-pf-hello"])
        git(repo, "checkout", "-q", "--", ".")
