"""Names of the databases pressfleet makes for itself (restore staging, restore-test scratch), and the check
that runs before any of them is dropped.

Every such name starts with `validate.RESERVED_PREFIX` (`pf_`), which no site name may take, so a staging
database can never be a site's live one: `pf_stage_shop` and `pf_old_shop` for a restore of `shop`,
`pf_rt_<hex>` for a restore-test. `check_droppable` refuses to drop anything else, and anything a saved
site or a site on the host uses, whatever its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pressfleet import validate
from pressfleet.validate import InvalidInput

STAGE = f"{validate.RESERVED_PREFIX}stage_"
OLD = f"{validate.RESERVED_PREFIX}old_"
SCRATCH = f"{validate.RESERVED_PREFIX}rt_"
_OURS = re.compile(rf"^(?:{STAGE}|{OLD}|{SCRATCH})[a-z0-9_]{{1,40}}$")


def staging_names(live: str) -> tuple[str, str]:
    """(staging, old) database names for an in-place restore of site database `live`."""
    live = validate.site_name(live)
    return f"{STAGE}{live}", f"{OLD}{live}"


_SCRATCH = re.compile(rf"^{SCRATCH}[0-9a-f]{{2,16}}$")


def scratch_name(tag: str) -> str:
    """The restore-test's scratch database (and MariaDB user) for a random hex tag."""
    return check_scratch(f"{SCRATCH}{tag}")


def check_scratch(name: str) -> str:
    """`name` if it is a restore-test scratch database or user name (`pf_rt_<hex>`); raises InvalidInput."""
    if not isinstance(name, str) or not _SCRATCH.fullmatch(name):
        raise InvalidInput(f"{name!r} is not a restore-test scratch name ({SCRATCH} and 2-16 hex digits).")
    return name


def check_droppable(name: str, protected: Iterable[str] = ()) -> str:
    """`name` if pressfleet may drop that database: one of its own staging or scratch names, and not a
    database in `protected` (the saved sites' and the host's live site databases). Raises InvalidInput."""
    if not isinstance(name, str) or not _OURS.fullmatch(name):
        raise InvalidInput(f"refusing to drop database {name!r}: pressfleet drops only its own staging databases "
                           f"({STAGE}*, {OLD}*, {SCRATCH}*).")
    if name in set(protected):
        raise InvalidInput(f"refusing to drop database {name!r}: it is a site's live database.")
    return name


def protected_databases() -> set[str]:
    """The saved sites' database names (a site's database is named after the site): never dropped."""
    from pressfleet.fleet import sites

    return {s.name for s in sites.saved_sites()}
