"""The last flow run that changed each site, kept as a Prefect Variable per site (`pressfleet-changed-SITE`), so
every control machine's overview sees it. Written by provisioning, updates and restores; read by the overview."""

from __future__ import annotations

from datetime import UTC, datetime

PREFIX = "pressfleet-changed-"


def record_change(site_name: str, job: str, what: str) -> None:
    """Note that this flow run (JOB) changed SITE_NAME: WHAT in a few words. Never fails the caller's run."""
    from prefect.runtime import flow_run
    from prefect.variables import Variable

    try:
        Variable.set(f"{PREFIX}{site_name}", {"job": job, "run_id": str(flow_run.get_id() or ""),
                                              "run_name": str(flow_run.get_name() or ""),
                                              "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                              "what": what[:200]}, overwrite=True)
    except Exception:  # noqa: BLE001 - the record is a convenience; the change itself is done
        pass


def last_changes(site_names) -> dict[str, dict]:
    """{site name: the record} for the sites that have one."""
    from prefect.variables import Variable

    out = {}
    for name in site_names:
        try:
            value = Variable.get(f"{PREFIX}{name}")
        except Exception:  # noqa: BLE001 - an unreadable record is shown as none
            value = None
        if isinstance(value, dict):
            out[name] = value
    return out
