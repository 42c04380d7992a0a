"""Prices the cost report uses: storage $/GB-month per provider and class, servers $/month per size.

The defaults are list prices (USD, mid-2025, US regions, before discounts, taxes, requests, retrieval and
egress fees): check your provider. The PriceTable block (blocks/pricing.py) lets a person edit them in the UI.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_STORAGE: dict[str, dict[str, float]] = {
    # provider -> storage class -> $ per GB-month
    "s3": {"standard": 0.023, "standard_ia": 0.0125, "glacier_ir": 0.004, "deep_archive": 0.00099},
    "gcs": {"standard": 0.020, "nearline": 0.010, "coldline": 0.004, "archive": 0.0012},
    "azure": {"hot": 0.018, "cool": 0.010, "cold": 0.0036, "archive": 0.00099},
    "local": {"standard": 0.10},  # a block-storage volume kept for backups
}
# Classes with minimum storage durations or retrieval fees: fine for older copies, not for the nightly one.
COLD_CLASSES = {"standard_ia", "glacier_ir", "deep_archive", "nearline", "coldline", "archive", "cool", "cold"}


class ServerSize(BaseModel):
    name: str = Field(description="The provider's name for the size, e.g. s-2vcpu-4gb.")
    vcpus: int = Field(ge=1)
    ram_gb: float = Field(gt=0)
    monthly_usd: float = Field(ge=0)


DEFAULT_SERVERS: list[ServerSize] = [
    ServerSize(name="1 vCPU / 1 GB", vcpus=1, ram_gb=1, monthly_usd=6.0),
    ServerSize(name="1 vCPU / 2 GB", vcpus=1, ram_gb=2, monthly_usd=12.0),
    ServerSize(name="2 vCPU / 2 GB", vcpus=2, ram_gb=2, monthly_usd=18.0),
    ServerSize(name="2 vCPU / 4 GB", vcpus=2, ram_gb=4, monthly_usd=24.0),
    ServerSize(name="4 vCPU / 8 GB", vcpus=4, ram_gb=8, monthly_usd=48.0),
    ServerSize(name="8 vCPU / 16 GB", vcpus=8, ram_gb=16, monthly_usd=96.0),
    ServerSize(name="16 vCPU / 32 GB", vcpus=16, ram_gb=32, monthly_usd=192.0),
]


class Prices(BaseModel):
    """What storage and servers cost, and what a change costs to make."""

    currency: str = "USD"
    storage_gb_month: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {p: dict(c) for p, c in DEFAULT_STORAGE.items()},
        description="provider -> storage class -> price per GB-month (list prices, check your provider)")
    servers: list[ServerSize] = Field(default_factory=lambda: [s.model_copy() for s in DEFAULT_SERVERS],
                                      description="server sizes and their monthly price (list prices)")
    retained_copies: float = Field(14, gt=0, description="full backup copies kept per site (e.g. 7 daily, 4 weekly, "
                                                        "3 monthly)")
    hot_copies: int = Field(7, ge=1, description="newest copies to keep in a hot class (restores are quick and free)")
    migration_hours: float = Field(2.0, ge=0, description="work to move a site to another server size")
    hourly_rate_usd: float = Field(60.0, ge=0, description="cost of an hour of that work")

    def storage_price(self, provider: str, storage_class: str) -> float | None:
        return self.storage_gb_month.get(provider, {}).get(storage_class)

    def cheapest_cold(self, provider: str) -> tuple[str, float] | None:
        classes = {c: p for c, p in self.storage_gb_month.get(provider, {}).items() if c in COLD_CLASSES}
        if not classes:
            return None
        c = min(classes, key=classes.get)
        return c, classes[c]
