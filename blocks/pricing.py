"""PriceTable block: what backup storage and servers cost, for the cost-report flow.

Register the block type once (it then appears in the UI's block catalogue):

    prefect block register -f blocks/pricing.py

Every field has a default: list prices (USD, mid-2025, US regions, before discounts, taxes, request,
retrieval and egress fees). They are a starting point, not a quote: check your provider and edit them in the UI.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from pressfleet.analysis.pricing import DEFAULT_SERVERS, DEFAULT_STORAGE, Prices, ServerSize


class PriceTable(Block):
    """Storage $/GB-month per provider and storage class, servers $/month per size (list prices: check your
    provider), and what moving a site to another size costs in work."""

    _block_type_name = "Price Table"
    _block_type_slug = "pressfleet-price-table"
    _description = ("Prices for pressfleet's cost report: backup storage per provider and class, server sizes. "
                    "Defaults are list prices: check your provider.")

    currency: str = Field("USD", description="Currency of every price below.")
    storage_gb_month: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {p: dict(c) for p, c in DEFAULT_STORAGE.items()},
        title="Storage price per GB-month",
        description="provider -> storage class -> price per GB-month. Defaults are list prices "
                    "(S3, GCS, Azure Blob in US regions; 'local' is a block-storage volume): check your provider.")
    servers: list[ServerSize] = Field(
        default_factory=lambda: [s.model_copy() for s in DEFAULT_SERVERS],
        title="Server sizes",
        description="name, vCPUs, RAM (GB) and price per month of each size you can buy (list prices: check your "
                    "provider).")
    retained_copies: float = Field(14, gt=0, description="Full backup copies kept per site (7 daily + 4 weekly + "
                                                        "3 monthly by default).")
    hot_copies: int = Field(7, ge=1, description="Newest copies kept in a hot class; older ones may go cold.")
    migration_hours: float = Field(2.0, ge=0, description="Hours of work to move a site to another server size.")
    hourly_rate_usd: float = Field(60.0, ge=0, description="Cost of an hour of that work.")

    def prices(self) -> Prices:
        """The plain price model the analyses use."""
        return Prices(currency=self.currency, storage_gb_month=self.storage_gb_month, servers=self.servers,
                      retained_copies=self.retained_copies, hot_copies=self.hot_copies,
                      migration_hours=self.migration_hours, hourly_rate_usd=self.hourly_rate_usd)
