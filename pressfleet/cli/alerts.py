"""`pressfleet alerts ...`: channels, escalation policies as Prefect automations, and the alerts themselves."""

from __future__ import annotations

import json
import os
import time
from typing import List, Optional

import typer

from pressfleet.cli.common import fail as _fail


def _duration(text: str) -> float:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if not m:
        _fail(f"a duration is a number and s, m, h or d (e.g. 2h), not {text!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _channel_ref(name: str) -> str:
    """TYPE/NAME as given, or NAME of an email channel."""
    return name if "/" in name else f"email-channel/{name}"


def register(app: typer.Typer) -> None:
    alerts_app = typer.Typer(help="Alerts: channels, escalation (Prefect automations), ack and silence.",
                             no_args_is_help=True)
    channel_app = typer.Typer(help="Where alerts are sent (Prefect notification blocks).", no_args_is_help=True)
    alerts_app.add_typer(channel_app, name="channel")
    app.add_typer(alerts_app, name="alerts")

    def _joined(ref: str, no_default: bool) -> None:
        from pressfleet.watch import config as setup

        if not no_default:
            setup.join_default(ref)
        res = setup.sync()
        typer.echo(f"channel {ref} saved" + ("" if no_default else "; level 1 of the default policy")
                   + f"; automations: {len(res['created'])} created, {len(res['updated'])} updated")

    @channel_app.command("email")
    def channel_email(
        name: str = typer.Argument(..., help="The channel's name (a-z, 0-9, -)."),
        to: List[str] = typer.Option(..., "--to", help="An address to send to (repeat for more)."),
        smtp: str = typer.Option(..., "--smtp", help="HOST:PORT of the SMTP server."),
        starttls: bool = typer.Option(False, "--starttls", help="STARTTLS after connecting."),
        tls: bool = typer.Option(False, "--tls", help="TLS from the first byte (port 465)."),
        user: Optional[str] = typer.Option(None, "--user", help="SMTP login; the password is read from "
                                                                 "PRESSFLEET_SMTP_PASSWORD (never an argument)."),
        sender: str = typer.Option("pressfleet@localhost", "--from", help="The From address."),
        no_default: bool = typer.Option(False, "--no-default", help="Do not add it to the default policy."),
    ) -> None:
        """An email channel (SMTP); it joins level 1 of the default policy unless --no-default."""
        from blocks.alerts import CHANNEL_RE
        from blocks.channels import EmailChannel

        ref = f"email-channel/{name}"
        if not CHANNEL_RE.fullmatch(ref):
            _fail(f"a channel name is a-z, 0-9 and -, not {name!r}: nothing was saved")
        host, _, port = smtp.rpartition(":")
        if not host or not port.isdigit():
            _fail(f"--smtp is HOST:PORT, not {smtp!r}: nothing was saved")
        password = os.environ.get("PRESSFLEET_SMTP_PASSWORD") if user else None
        try:
            ch = EmailChannel(to=to, smtp_host=host, smtp_port=int(port), username=user, password=password,
                              security="tls" if tls else "starttls" if starttls else "none", from_address=sender)
        except ValueError as exc:
            _fail(f"email channel {name}: {exc}: nothing was saved")
        ch.save(name, overwrite=True)
        _joined(ref, no_default)

    @channel_app.command("webhook")
    def channel_webhook(
        name: str = typer.Argument(...),
        url: str = typer.Option(..., "--url", help="Where to POST {\"subject\", \"body\"} as JSON."),
        no_default: bool = typer.Option(False, "--no-default"),
    ) -> None:
        """A generic webhook channel (Prefect's Custom Webhook block); joins the default policy unless --no-default."""
        from prefect.blocks.notifications import CustomWebhookNotificationBlock

        from blocks.alerts import CHANNEL_RE
        from pressfleet import validate

        ref = f"custom-webhook/{name}"
        if not CHANNEL_RE.fullmatch(ref):
            _fail(f"a channel name is a-z, 0-9 and -, not {name!r}: nothing was saved")
        try:
            url = validate.url(url)
        except ValueError as exc:
            _fail(f"webhook {name}: {exc}: nothing was saved")
        CustomWebhookNotificationBlock(name=name, url=url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
                                       ).save(name, overwrite=True)
        _joined(ref, no_default)

    @channel_app.command("remove")
    def channel_remove(name: str = typer.Argument(..., help="TYPE/NAME, or NAME of an email channel.")) -> None:
        """Remove a channel: out of every policy, the automations synced, then the block deleted."""
        from prefect.client.orchestration import get_client

        from pressfleet.watch import config as setup

        ref = _channel_ref(name)
        try:
            cid = setup.channel_id(ref)
        except ValueError as exc:
            _fail(str(exc))
        changed = setup.leave_policies(ref)
        setup.sync()
        with get_client(sync_client=True) as client:
            client.delete_block_document(cid)
        typer.echo(f"channel {ref} removed (policies changed: {', '.join(changed) or 'none'})")

    @alerts_app.command("sync")
    def alerts_sync() -> None:
        """Save the shipped rules and default policy where missing, and make every policy's automations."""
        from pressfleet.watch import config as setup

        typer.echo(json.dumps(setup.sync(), indent=2))

    @alerts_app.command("test")
    def alerts_test(channel: str = typer.Argument(..., help="TYPE/NAME, or NAME of an email channel.")) -> None:
        """Send a test message through one channel now."""
        from prefect.blocks.core import Block

        ref = _channel_ref(channel)
        try:
            block = Block.load(ref)
        except ValueError as exc:
            _fail(f"no channel {ref!r}: {exc}")
        import asyncio
        import inspect

        try:
            with block.raise_on_failure():
                out = block.notify(body="A test message from pressfleet: this channel works.",
                                   subject="[TEST] pressfleet alerts")
                if inspect.isawaitable(out):
                    asyncio.run(out)
        except Exception as exc:  # noqa: BLE001 - the channel's own error, shown as such
            _fail(f"channel {ref} failed: {getattr(exc, 'log', '') or exc}")
        typer.echo(f"test message sent through {ref}")

    @alerts_app.command("list")
    def alerts_list(as_json: bool = typer.Option(False, "--json")) -> None:
        """Firing alerts (acked and silenced ones marked) and the silences in force."""
        from pressfleet.alerts.store import AlertStore

        store = AlertStore()
        rows = store.alerts()
        if as_json:
            typer.echo(json.dumps([r.__dict__ for r in rows], default=str))
            return
        for r in rows:
            marks = [m for m in (f"acked by {r.acked_by}" if r.acked_by else "", r.suppressed) if m]
            typer.echo(f"{r.alert_id}  {r.severity:8} {r.rule:24} {r.resource:32} {r.summary}"
                       + (f"  [{'; '.join(marks)}]" if marks else ""))
        for s in store.silences():
            typer.echo(f"silence {s.id}: {s.kind} {s.target} until {time.strftime('%H:%M', time.localtime(s.until))}"
                       f" {s.reason}")
        if not rows:
            typer.echo("no alert is firing")

    @alerts_app.command("ack")
    def alerts_ack(alert_id: str = typer.Argument(...), note: str = typer.Option("", "--note")) -> None:
        """Acknowledge an alert: its escalation stops (level 1 is not reminded)."""
        from pressfleet.alerts import events
        from pressfleet.alerts.store import AlertStore

        store = AlertStore()
        row = store.find(alert_id)
        if row is None:
            _fail(f"no firing alert {alert_id!r} (`pressfleet alerts list` shows them)")
        by = os.environ.get("SUDO_USER") or os.environ.get("USER") or "cli"
        store.ack(alert_id, by, note)
        events.emit_acked(alert_id=alert_id, resource_id=row.resource, rule=row.rule, policy=row.policy, by=by,
                          now=time.time())
        events.flush()
        typer.echo(f"alert {alert_id} acknowledged by {by}")

    @alerts_app.command("silence")
    def alerts_silence(
        site: Optional[str] = typer.Option(None, "--site"),
        server: Optional[str] = typer.Option(None, "--server"),
        for_: str = typer.Option("2h", "--for", help="e.g. 30m, 2h, 1d"),
        reason: str = typer.Option("", "--reason"),
        rule: str = typer.Option("", "--rule", help="Only this rule (default: every rule)."),
    ) -> None:
        """A maintenance window: no new alert of the site (or of the server and its sites) is sent until it ends."""
        from pressfleet import validate
        from pressfleet.alerts.rules import label, rule_name
        from pressfleet.alerts.store import AlertStore

        if bool(site) == bool(server):
            _fail("name one --site or one --server")
        try:
            kind, target = ("site", validate.site_name(site)) if site else ("server", label(server))
            if rule:
                rule_name(rule)
        except ValueError as exc:
            _fail(str(exc))
        seconds = _duration(for_)
        sil = AlertStore().add_silence(kind, target, seconds, reason[:300], rule=rule,
                                       by=os.environ.get("USER") or "cli")
        typer.echo(f"silence {sil.id}: {kind} {target} for {for_}" + (f" ({reason})" if reason else ""))
