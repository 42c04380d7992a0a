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
        time.sleep(2)  # the triggers service loads new automations

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
        time.sleep(2)
        events.emit_acked(alert_id="t-acked", resource_id=res.resource_id, rule=rule.name, policy="t-policy",
                          by="pytest", now=time.time())
        events.flush()

        first = _wait_for(tmp_path, lambda m: m["to"] == "l1@lab.test", 30)
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
