"""The saved Standby Pair blocks (I/O against the Prefect API)."""

from __future__ import annotations


def saved_pairs(state: str | None = None) -> list:
    """Every saved Standby Pair block (only those whose standby is in STATE, when given), loaded with secrets:
    the callers reach the servers. The state is read from the documents first, so a filter loads few."""
    from prefect.client.orchestration import get_client

    from blocks.standby import StandbyPair

    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(block_type_slug="pressfleet-standby-pair",
                                                       include_secrets=False)
        except Exception:  # noqa: BLE001 - the block type is not registered yet: no pair exists
            return []
    pairs = []
    for doc in docs:
        if doc.name and not doc.is_anonymous and (state is None or (doc.data or {}).get("standby_state") == state):
            pairs.append(StandbyPair.load(doc.name))
    return pairs


def pairs_on(address: str) -> list:
    """The pairs that have a server at ADDRESS (as primary or standby)."""
    return [p for p in saved_pairs() if address in (p.primary.address, p.standby.address)]
