"""Let's Encrypt's certificates-per-registered-domain limit as a Prefect rate limit: a global concurrency limit
with slot decay, one per registered domain, made on first use. A fleet-wide run that would pass it waits, then
stops with a clear error, instead of locking the zone out for a week."""

from __future__ import annotations

from pressfleet.multisite.domains import CERTIFICATES_PER_WEEK, WEEK_S, rate_limit_name


class RateLimited(RuntimeError):
    pass


def ensure_limit(name: str, per_week: int = CERTIFICATES_PER_WEEK) -> str:
    """The rate limit for NAME's registered domain (made if missing); returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    limit = rate_limit_name(name)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                    name=limit, limit=per_week, slot_decay_per_second=per_week / WEEK_S))
            except ObjectAlreadyExists:  # another run made it meanwhile
                pass
    return limit


def take_certificate_slot(name: str, timeout_s: float = 30.0, per_week: int = CERTIFICATES_PER_WEEK) -> str:
    """One slot of NAME's registered domain's weekly certificates; RateLimited when none frees within TIMEOUT_S.
    (PER_WEEK sizes a limit made here; one that exists keeps its own size, which a person may change in the UI.)"""
    from prefect.concurrency.sync import rate_limit

    limit = ensure_limit(name, per_week)
    try:
        rate_limit(limit, occupy=1, timeout_seconds=timeout_s, strict=True)
    except TimeoutError:
        raise RateLimited(f"the certificates allowed for {limit.removeprefix('acme-certificates-')} "
                          "in a week were all asked for (Let's Encrypt allows 50 per registered domain): "
                          f"nothing was changed; try again later or raise the Prefect limit {limit!r}") from None
    return limit
