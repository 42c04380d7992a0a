"""The watcher against a real lab host: probes, rules, Prefect automations and a real SMTP server, end to end.

One scenario runs once for the module (the watcher every 5 s, its shipped rules, the default policy's level 1
mailing a local aiosmtpd server through a reactive automation of the Prefect harness):
- two.lab.test is silenced (`pressfleet alerts silence`), then nginx stops on the shared host: blog.lab.test's
  site-down mail arrives (the issue asks within 45 s) and two's does not;
- nginx flaps (back 10 s, down 10 s, back): still one alert, and one resolved mail once it stays up;
- a server whose SSH and HTTPS are both gone (a Server block on a closed loopback port) gives one alert,
  server-down, its site's site-down muted by inhibition;
- a PHP fatal planted in blog's code is logged by PHP-FPM, collect-metrics reads it from the site's log (as the
  site's user) and the php-fatal mail names the error.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import connect_lab, make_site

pytestmark = pytest.mark.lab

INTERVAL = 5.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_mail(folder: Path, pred, timeout: float, since: float = 0.0) -> list[dict]:
    from pressfleet.stack.mailbox import read_mail

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in read_mail(folder, since) if pred(m)]
        if got:
            return got
        time.sleep(0.5)
    return []


def _mails(folder: Path, pred) -> list[dict]:
    from pressfleet.stack.mailbox import read_mail

    return [m for m in read_mail(folder) if pred(m)]


class Scenario(dict):
    """What the module's one run measured (seconds, mails), for the tests below to check."""


@pytest.fixture(scope="module")
def scenario(shared_host, tmp_path_factory):
    from aiosmtpd.controller import Controller
    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    from blocks.channels import EmailChannel
    from blocks.site import WordPressSite
    from flows.collect_metrics import collect_metrics
    from pressfleet.cli.main import app
    from pressfleet.fleet.sites import site_block_name
    from pressfleet.stack.mailbox import SaveToFolder
    from pressfleet.watch import config

    mail = tmp_path_factory.mktemp("mail")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 443)) != 0, "something listens on 127.0.0.1:443: the ghost needs it closed"
    ctl = Controller(SaveToFolder(mail), hostname="127.0.0.1", port=_port())
    ctl.start()
    one, two = shared_host.one, shared_host.two
    ghost_server = shared_host.server.model_copy(update={"address": "127.0.0.1", "port": _port()})
    ghost = make_site(name="ghost_lab_test", domain="ghost.lab.test", server=ghost_server)
    ghost_block = site_block_name("ghost_lab_test")
    ghost.save(ghost_block, overwrite=True)
    EmailChannel(to=["ops@lab.test"], smtp_host="127.0.0.1", smtp_port=ctl.port, security="none").save(
        "lab-ops", overwrite=True)
    config.join_default("email-channel/lab-ops")
    synced = config.sync()
    assert "pressfleet-alerts/default/level-1" in synced["created"] + synced["updated"] + synced["unchanged"]
    from pressfleet.alerts.store import AlertStore

    for sil in AlertStore().silences():  # earlier modules' jobs (updates, provisioning) leave a grace period
        AlertStore().end_silence(sil.id)
    r = CliRunner().invoke(app, ["alerts", "silence", "--site", two.site.name, "--for", "30m", "--reason",
                                 "lab test: maintenance"])
    assert r.exit_code == 0, r.output
    silence_id = r.output.split()[1].rstrip(":")
    time.sleep(6)  # the triggers service reloads automations at least every 5 s

    log = tmp_path_factory.mktemp("watch") / "watcher.log"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    with open(log, "wb") as out:
        # only this module's sites and their servers: the session's harness holds other tests' blocks too, some
        # naming addresses no test may reach
        watcher = subprocess.Popen([sys.executable, "-m", "pressfleet.watch", "--interval", str(INTERVAL),
                                    "--refresh", "10", "--sites", f"{one.site.name},{two.site.name},ghost_lab_test"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    conn = connect_lab(shared_host.host)
    sc = Scenario(mail=mail, log=log, one=one, two=two)
    try:
        from pressfleet.watch.watcher import read_status

        deadline = time.monotonic() + 60  # a round with everything up: the fleet is loaded, nothing fires
        while time.monotonic() < deadline and not ((read_status() or {}).get("pid") == watcher.pid
                                                   and read_status()["round"] >= 2):
            time.sleep(0.5)
        sc["watched"] = (read_status() or {}).get("watched", [])
        assert one.site.domain in sc["watched"], log.read_text()[-2000:]
        sc["before"] = _mails(mail, lambda m: True)
        blog = one.site.domain
        is_blog_down = lambda m: m["subject"].startswith("[CRITICAL] site-down") and blog in m["subject"]  # noqa
        stopped = time.time()
        conn.run("systemctl stop nginx", hide=True, in_stream=False)
        first = _wait_mail(mail, is_blog_down, 90)
        sc["alerts_down"] = AlertStore().alerts(active_only=False)  # two's held-back alert, while it is down
        sc["detected_seconds"] = first[0]["at"] - stopped if first else None
        # flapping: back for 10 s, down for 10 s, then back for good
        conn.run("systemctl start nginx", hide=True, in_stream=False)
        time.sleep(10)
        conn.run("systemctl stop nginx", hide=True, in_stream=False)
        time.sleep(10)
        conn.run("systemctl start nginx", hide=True, in_stream=False)
        up_at = time.time()
        resolved = _wait_mail(mail, lambda m: m["subject"].startswith("[RESOLVED] site-down") and blog in m["subject"],
                              150)
        sc["resolved_after_up_seconds"] = resolved[0]["at"] - up_at if resolved else None

        # a PHP fatal in blog's own code: PHP-FPM logs it, collect-metrics reads the site's log
        cfg = one.site.config()
        planted = f"{cfg.web_root}/pf-fatal-test.php"
        # deployed code (root's, as a pipeline would put it; the web root is not the site's to write)
        conn.run(f"printf '<?php pf_planted_undefined_function();\\n' > {planted} && chmod 0644 {planted}", hide=True,
                 in_stream=False)
        conn.run(f"curl -ks -o /dev/null --resolve {blog}:443:127.0.0.1 https://{blog}/pf-fatal-test.php", hide=True,
                 warn=True, in_stream=False)
        conn.run(f"rm -f {planted}", hide=True, in_stream=False)
        # two's log made a symlink to a root-only file with a fatal in it: read as two's user, it counts nothing
        two_log = f"{two.site.config().home}/log/php-error.log"
        secret = "/root/pf-root-only.log"
        conn.run(f"printf '[%s] PHP Fatal error:  root-only-secret\\n' \"$(date -u '+%d-%b-%Y %H:%M:%S UTC')\" "
                 f"> {secret} && chmod 0600 {secret} && mv {two_log} {two_log}.pf-aside; ln -s {secret} {two_log}",
                 hide=True, in_stream=False)
        try:
            summary = collect_metrics(servers=[shared_host.server], sites=[one.site, two.site])
        finally:
            conn.run(f"rm -f {two_log} {secret}; mv {two_log}.pf-aside {two_log} 2>/dev/null || true", hide=True,
                     in_stream=False)
        sc["collected"] = summary
        sc["fatal"] = _wait_mail(mail, lambda m: "php-fatal" in m["subject"] and "blog" in m["subject"], 60)
        sc["all"] = _mails(mail, lambda m: True)
        sc["watcher_rc"] = watcher.poll()
        from pressfleet.alerts.store import AlertStore
        from pressfleet.metrics.store import open_store

        sc["alerts"] = AlertStore().alerts(active_only=False)
        sc["probes"] = list(open_store().read_series("probe_up", shared_host.host.address, blog,
                                                     start=stopped - 60).values)
        yield sc
    finally:
        watcher.terminate()  # first: nothing below may leave it running (it is this test's process, by PID)
        try:
            watcher.wait(20)
        except subprocess.TimeoutExpired:
            watcher.kill()
            watcher.wait()
        try:
            conn.run("systemctl start nginx", hide=True, warn=True, in_stream=False)
        finally:
            conn.close()
            ctl.stop()
        from prefect.client.orchestration import get_client

        from pressfleet.alerts import automations

        automations.sync([], policies=["default"])
        from pressfleet.alerts.store import AlertStore

        AlertStore().end_silence(silence_id)
        config.leave_policies("email-channel/lab-ops")
        with get_client(sync_client=True) as client:
            for slug, name in (("wordpress-site", ghost_block), ("email-channel", "lab-ops")):
                try:
                    doc = client.read_block_document_by_name(name=name, block_type_slug=slug)
                    client.delete_block_document(doc.id)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        assert WordPressSite  # imported for the fixture's readers


def _subjects(sc, pred=lambda m: True) -> list[str]:
    return [m["subject"] for m in sc["all"] if pred(m)]


def test_a_stopped_nginx_mails_level_one_within_45_seconds(scenario):
    ours = (scenario["one"].site.domain, scenario["two"].site.domain)  # the session's other sites may be gone
    early = [m["subject"] for m in scenario["before"] if any(d in m["subject"] for d in ours)]
    assert early == [], f"mail before anything broke: {early}"
    detected = scenario["detected_seconds"]
    assert detected is not None, f"no site-down mail; watcher log:\n{scenario['log'].read_text()[-3000:]}"
    print(f"site-down mail {detected:.1f} s after nginx stopped")
    assert detected < 45
    mail = next(m for m in scenario["all"] if m["subject"].startswith("[CRITICAL] site-down")
                and scenario["one"].site.domain in m["subject"])
    assert mail["to"] == "ops@lab.test"
    assert "pressfleet alerts ack " in mail["body"] and "ConnectError" in mail["body"]


def test_flapping_gives_one_alert_and_one_resolved_mail(scenario):
    blog = scenario["one"].site.domain
    fired = _subjects(scenario, lambda m: m["subject"].startswith("[CRITICAL] site-down") and blog in m["subject"])
    resolved = _subjects(scenario, lambda m: m["subject"].startswith("[RESOLVED] site-down") and blog in m["subject"])
    assert len(fired) == 1, fired
    assert len(resolved) == 1, resolved
    # the watcher did see it flap: down, up between, down again, then up
    p = "".join(str(int(v)) for v in scenario["probes"])
    assert re.search(r"0+1+0+1+$", p), p
    after = scenario["resolved_after_up_seconds"]
    print(f"resolved mail {after:.1f} s after nginx came back for good (rule: 55 s of health)")
    assert after >= 50  # hysteresis: not the moment it answered once


def test_a_silenced_site_sends_nothing(scenario):
    two = scenario["two"].site.domain
    assert not _subjects(scenario, lambda m: two in m["subject"])
    # it did go down with nginx: its alert was there, held back by the silence
    [held] = [a for a in scenario["alerts_down"] if a.resource == f"pressfleet.site.{scenario['two'].site.name}"
              and a.rule == "site-down"]
    assert held.suppressed.startswith("silenced") and "lab test: maintenance" in held.suppressed, held
    assert not held.notified


def test_a_host_that_is_gone_gives_one_alert_not_one_per_site(scenario):
    ghost = _subjects(scenario, lambda m: "127.0.0.1" in m["subject"] or "ghost.lab.test" in m["subject"])
    assert [s for s in ghost if s.startswith("[CRITICAL] server-down")], ghost
    assert len(ghost) == 1, ghost  # server-down only: ghost.lab.test's site-down is inhibited
    # the watcher was told to watch these three sites alone (the harness holds other tests' blocks)
    assert sorted(scenario["watched"]) == sorted([scenario["one"].site.domain, scenario["two"].site.domain,
                                                  "ghost.lab.test"])


def test_a_planted_php_fatal_is_named_in_the_alert(scenario):
    fatal = scenario["fatal"]
    assert fatal, f"no php-fatal mail; subjects: {_subjects(scenario)}"
    assert "pf_planted_undefined_function" in fatal[0]["body"], fatal[0]["body"]
    # two's log was a symlink to a root-only file: not read (by root or anyone), nothing counted or mailed
    [host] = scenario["collected"].hosts
    assert host.values.get(f"php_fatal_count{{site={scenario['two'].site.domain}}}") == 0.0, host.values
    assert not [m for m in scenario["all"] if "root-only-secret" in m["body"]]
    assert scenario["watcher_rc"] is None  # still running
