"""What a scheduled fleet job says when the fleet is empty: it completes, with a note, instead of failing.

A schedule fires whether or not anything was saved yet (the demo's `ship-binlogs` fired before its first site
existed). A run that was given no site and finds no saved one has nothing to do: that is not a failure.
"""

from __future__ import annotations

NO_SITES = "no sites yet: nothing to do"
NO_SERVERS = "no servers yet: nothing to do"
_HOW = {
    NO_SITES: "No saved WordPress Site block names its server. `pressfleet provision SERVER --domain DOMAIN` "
              "saves one (or pick a site in the run's form).",
    NO_SERVERS: "No Server block is saved. `pressfleet lab up NAME` saves one for a lab host (or create a "
                "Server block in the UI).",
}


def no_saved_sites(site=None) -> bool:
    """True when a run names no site and no saved WordPress Site block names its server."""
    if site is not None:
        return False
    from pressfleet.backup.targets import saved_sites

    return not saved_sites()


def nothing_to_do(key: str, note: str = NO_SITES) -> list:
    """Log the note, publish it as the markdown artifact `key` (the one a normal run publishes), return []."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    get_run_logger().info("%s", note)
    create_markdown_artifact(key=key, markdown=f"# {key}\n\n**{note}.** {_HOW.get(note, '')}".rstrip(),
                             description=f"{key}: {note}")
    return []
