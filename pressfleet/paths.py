"""Where pressfleet keeps its files.

Everything a run writes lives under the project's state folder (`.state/`, ignored by git) unless
`PRESSFLEET_STATE` points elsewhere. The lab's template and hosts live under `PRESSFLEET_LAB_DIR`
(default `/var/lib/pressfleet/lab`) so that every clone on a machine shares one cached template.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"


def state_dir() -> Path:
    return Path(os.environ.get("PRESSFLEET_STATE", ROOT / ".state")).resolve()


def lab_dir() -> Path:
    return Path(os.environ.get("PRESSFLEET_LAB_DIR", "/var/lib/pressfleet/lab")).resolve()
