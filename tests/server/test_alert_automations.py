"""Alert policies through a real Prefect server: the automations `sync` makes send mail to a real SMTP server.

Level 1 gets the firing alert at once even though another level-1 channel's SMTP server refuses; level 2 gets it
when nobody acks within the (shortened) delay; an ack stops the escalation; the resolved message goes to level 1.
"""

from __future__ import annotations

import socket
import time

import pytest

pytestmark = pytest.mark.server


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(mail, pred, timeout: float):
    from pressfleet.stack.mailbox import read_mail

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in read_mail(mail) if pred(m)]
        if got:
            return got
        time.sleep(0.5)
    return []


def _events_seen(names: set[str], since: float, timeout: float = 30.0) -> set[str]:
    """Which of these alert ids' firing events the server has stored (so a missing mail is not a lost event)."""
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client

    body = {"filter": {"event": {"name": ["pressfleet.alert.firing"]},
                       "occurred": {"since": datetime.fromtimestamp(since - 60, timezone.utc).isoformat()}},
            "limit": 50}
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and seen < names:
            res = client._client.post("/events/filter", json=body)
            res.raise_for_status()
            seen = {e["resource"].get("pressfleet.alert.id") for e in res.json()["events"]} & names
            if seen < names:
                time.sleep(0.5)
    return seen


def test_escalation_ack_and_resolved_through_prefect_automations(prefect_api, tmp_path):
    from aiosmtpd.controller import Controller

    from blocks.channels import EmailChannel
    from pressfleet.alerts import automations, events
    from pressfleet.alerts.rules import DEFAULT_RULES, AlertState, Notice, Resource
    from pressfleet.stack.mailbox import SaveToFolder, read_mail

    port = _port()
    ctl = Controller(SaveToFolder(tmp_path), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        for name, to, p in (("t-l1", "l1@lab.test", port), ("t-l2", "l2@lab.test", port),
                            ("t-refused", "x@lab.test", _port())):
            EmailChannel(to=[to], smtp_host="127.0.0.1", smtp_port=p, security="none").save(name, overwrite=True)
        ids = {n: EmailChannel.load(n)._block_document_id for n in ("t-l1", "t-l2", "t-refused")}
        specs = automations.policy_automations("t-policy", [(0, [ids["t-refused"], ids["t-l1"]]),
                                                            (0.25, [ids["t-l2"]])])
        done = automations.sync(specs, policies=["t-policy"])
        assert len(done["created"]) == 4
        assert automations.sync(specs, policies=["t-policy"])["unchanged"] == [s["name"] for s in specs]
        time.sleep(6)  # the triggers service reloads automations at least every 5 s

        rule = next(r for r in DEFAULT_RULES if r.name == "site-down")
        res = Resource("site", "blog", server="web1", address="blog.lab.test")
        unacked = AlertState(rule=rule.name, resource=res.resource_id, status="firing", since=time.time(),
                             value=0.0, alert_id="t-unacked", notified=True, evidence={"error": "ConnectError"})
        acked = AlertState(rule=rule.name, resource=res.resource_id, status="firing", since=time.time(),
                           value=0.0, alert_id="t-acked", notified=True)
        t0 = time.monotonic()
        for st in (unacked, acked):
            events.emit(Notice("firing", st, rule, res), policy="t-policy", now=time.time())
        events.flush()
        sent_at = time.time()
        assert _events_seen({"t-unacked", "t-acked"}, sent_at) == {"t-unacked", "t-acked"}, "the events never arrived"
        events.emit_acked(alert_id="t-acked", resource_id=res.resource_id, rule=rule.name, policy="t-policy",
                          by="pytest", now=time.time())
        events.flush()

        first = _wait_for(tmp_path, lambda m: m["to"] == "l1@lab.test", 60)
        assert first, "level 1 got no mail (the refused channel must not stop it)"
        assert "site-down" in first[0]["subject"] and "blog.lab.test" in first[0]["subject"]
        assert "pressfleet alerts ack t-" in first[0]["body"]
        level2 = _wait_for(tmp_path, lambda m: m["to"] == "l2@lab.test", 60)
        assert level2 and "no ack in 0.25 min" in level2[0]["subject"]
        time.sleep(20)  # the acked alert's window has long passed: it must not have escalated
        l2 = [m for m in read_mail(tmp_path) if m["to"] == "l2@lab.test"]
        assert ["t-unacked" in m["body"] for m in l2] == [True], [m["body"][-200:] for m in l2]
        print(f"level 1 after {first[0]['at'] - (time.time() - (time.monotonic() - t0)):.1f} s")

        events.emit(Notice("resolved", unacked, rule, res), policy="t-policy", now=time.time(),
                    levels=[0, 0.25])
        events.flush()
        resolved = _wait_for(tmp_path, lambda m: m["subject"].startswith("[RESOLVED]"), 30)
        assert {m["to"] for m in resolved} <= {"l1@lab.test", "l2@lab.test"} and resolved
    finally:
        ctl.stop()
        automations.sync([], policies=["t-policy"])


def test_the_alerts_cli_makes_a_channel_that_receives_the_test_message(prefect_api, tmp_path, monkeypatch):
    """`alerts channel email` saves the block and joins the default policy's level 1 (synced as automations);
    `alerts test` delivers; bad input is refused with nothing saved; `alerts channel remove` takes it out."""
    from aiosmtpd.controller import Controller
    from typer.testing import CliRunner

    from blocks.alerts import AlertPolicy
    from pressfleet.alerts.automations import TAG
    from pressfleet.cli.main import app
    from pressfleet.fleet.saved import saved_block_names
    from pressfleet.stack.mailbox import SaveToFolder

    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path / "state"))
    runner = CliRunner()
    port = _port()
    ctl = Controller(SaveToFolder(tmp_path), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        r = runner.invoke(app, ["alerts", "channel", "email", "cli-ops", "--to", "ops@lab.test",
                                "--smtp", f"127.0.0.1:{port}"])
        assert r.exit_code == 0, r.output
        assert "email-channel/cli-ops" in AlertPolicy.load("default").levels[0].channels
        assert "rule-site-down" in saved_block_names("alert-rule")
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            names = {a.name for a in client.read_automations() if TAG in (a.tags or [])}
        assert "pressfleet-alerts/default/level-1" in names
        r = runner.invoke(app, ["alerts", "test", "cli-ops"])
        assert r.exit_code == 0, r.output
        got = _wait_for(tmp_path, lambda m: m["subject"] == "[TEST] pressfleet alerts", 10)
        assert got and got[0]["to"] == "ops@lab.test"

        for bad in (["--to", "not-an-address", "--smtp", f"127.0.0.1:{port}"], ["--to", "a@lab.test", "--smtp", "nohost"]):
            r = runner.invoke(app, ["alerts", "channel", "email", "cli-bad", *bad])
            assert r.exit_code != 0 and "nothing was saved" in r.output, r.output
        assert "cli-bad" not in saved_block_names("email-channel")
        r = runner.invoke(app, ["alerts", "channel", "email", "cli-closed", "--to", "a@lab.test", "--smtp",
                                f"127.0.0.1:{_port()}", "--no-default"])
        assert r.exit_code == 0
        r = runner.invoke(app, ["alerts", "test", "cli-closed"])
        assert r.exit_code != 0 and "ConnectionRefusedError" in r.output, r.output

        for name in ("cli-ops", "cli-closed"):
            r = runner.invoke(app, ["alerts", "channel", "remove", name])
            assert r.exit_code == 0, r.output
        assert "email-channel/cli-ops" not in AlertPolicy.load("default").levels[0].channels
        assert not {"cli-ops", "cli-closed"} & set(saved_block_names("email-channel"))
    finally:
        ctl.stop()
