"""The blocks a person saved (what the fleet jobs cover when a run names none)."""

from __future__ import annotations


def saved_block_names(slug: str) -> list[str]:
    """Names of the saved (not anonymous) blocks of one type, sorted; none if the type was never registered."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(block_type_slug=slug, include_secrets=False)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:  # the block type was never registered: no such blocks
                return []
            raise
    return sorted(d.name for d in docs if d.name and not d.is_anonymous)
