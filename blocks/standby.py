"""Blocks of disaster recovery: a site's standby pair, and the traffic in front of it (HAProxy or Route 53).

    prefect block register -f blocks/standby.py

`pressfleet standby add` saves a Standby Pair block per site (`standby-<site>`); `pressfleet front add` saves
a Front block, `pressfleet dns add` a Route 53 DNS block. A failover rewrites the pair (the new primary first)
and the site block's server, so every other job follows the site to its new primary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from blocks.server import Server
from pressfleet import validate


class Front(Block):
    """A health-checked front: HAProxy on its own server, passing each site's TLS through to its primary."""

    _block_type_name = "Front"
    _block_type_slug = "pressfleet-front"
    _description = "HAProxy on its own server in front of sites with a standby: health checks of both servers."

    server: Server = Field(..., title="Front server", description="The server HAProxy runs on (Debian 12).")
    address: Optional[str] = Field(None, title="Public address",
                                   description="The address visitors reach (the site's DNS points here). "
                                               "Empty: the server's address.")

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: Optional[str]) -> Optional[str]:
        return validate.hostname(value) if value else None

    @property
    def public_address(self) -> str:
        return self.address or self.server.address


class Route53Dns(Block):
    """DNS failover through Route 53: the site's A record points at its primary, switched by the API."""

    _block_type_name = "Route 53 DNS"
    _block_type_slug = "pressfleet-route53"
    _description = "A Route 53 hosted zone whose A records pressfleet switches on failover."
    model_config = ConfigDict(hide_input_in_errors=True)

    hosted_zone_id: str = Field(..., title="Hosted zone id", pattern=r"^[A-Za-z0-9/]{1,64}$")
    region: str = Field("us-east-1", title="Region", pattern=r"^[a-z0-9-]{1,32}$")
    access_key_id: str = Field(..., title="Access key id", pattern=r"^[A-Za-z0-9]{1,128}$")
    secret_access_key: SecretStr = Field(..., title="Secret access key")
    endpoint_url: Optional[str] = Field(None, title="Endpoint URL",
                                        description="Empty for AWS; an emulator's URL (moto) in tests.")
    ttl: int = Field(30, ge=1, le=86400, title="Record TTL (seconds)",
                     description="How long resolvers keep the old address after a switch.")

    @field_validator("endpoint_url")
    @classmethod
    def _check_url(cls, value: Optional[str]) -> Optional[str]:
        return validate.url(value) if value else None

    def client(self):
        import boto3

        return boto3.client("route53", region_name=self.region, endpoint_url=self.endpoint_url,
                            aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret_access_key.get_secret_value())


class StandbyPair(Block):
    """A site's primary and its standby: MariaDB GTID replication over TLS and a file sync, and how traffic
    reaches whichever is primary. Failover swaps the two; `standby_state` says what the standby is now."""

    _block_type_name = "Standby Pair"
    _block_type_slug = "pressfleet-standby-pair"
    _description = "A site's primary and standby servers, replication mode, traffic, and automatic failover rules."

    site: str = Field(..., title="Site name")
    primary: Server = Field(..., title="Primary server")
    standby: Server = Field(..., title="Standby server")
    semisync: bool = Field(False, title="Semi-synchronous replication",
                           description="A commit on the primary waits (at most 5 s) for the standby's ack, so an "
                                       "acknowledged write is never lost. Costs a round trip per commit.")
    traffic: Literal["front", "dns", "none"] = Field("front", title="Traffic")
    front: Optional[Front] = Field(None, title="Front", description="With traffic 'front'.")
    dns: Optional[Route53Dns] = Field(None, title="Route 53", description="With traffic 'dns'.")
    auto_failover: bool = Field(True, title="Fail over automatically")
    failover_after_s: int = Field(20, ge=5, le=3600, title="Down for (seconds)",
                                  description="How long the site and its database must fail before an automatic "
                                              "failover.")
    cooldown_minutes: int = Field(60, ge=1, le=10080, title="Cool-down (minutes)",
                                  description="No automatic failover this soon after the last one.")
    max_behind: int = Field(0, ge=0, title="Allowed lag (transactions)",
                            description="A failover onto a standby further behind is refused unless forced.")
    file_sync_interval_s: int = Field(10, ge=5, le=3600, title="File sync interval (seconds)")
    standby_state: Literal["replica", "fenced", "fence-pending"] = Field("replica", title="Standby state")
    last_failover: Optional[datetime] = Field(None, title="Last failover")

    @field_validator("site")
    @classmethod
    def _check_site(cls, value: str) -> str:
        return validate.site_name(value)

    @model_validator(mode="after")
    def _coherent(self) -> "StandbyPair":
        same = (self.primary.address, self.primary.port) == (self.standby.address, self.standby.port)
        if same:
            raise ValueError(f"the standby of {self.site} is on its primary's own server ({self.primary.address}): "
                             "a standby must be on another server")
        if self.traffic == "front" and self.front is None:
            raise ValueError("traffic 'front' needs a Front block")
        if self.traffic == "dns" and self.dns is None:
            raise ValueError("traffic 'dns' needs a Route 53 DNS block")
        return self


def pair_block_name(site: str) -> str:
    return f"standby-{validate.site_name(site).replace('_', '-')}"


def load_pair(site: str) -> StandbyPair:
    """The site's saved pair, or a clear error naming the command that makes one."""
    try:
        return StandbyPair.load(pair_block_name(site))
    except ValueError:
        raise validate.InvalidInput(f"{site} has no standby: `pressfleet standby add {site} --server SERVER` "
                                    "makes one") from None
