"""Does a domain resolve to the server? Asked through the resolver the control side uses (dnspython), or one
named as ADDRESS[:PORT] (the lab: pebble-challtestsrv's DNS, the one pebble validates through)."""

from __future__ import annotations

import ipaddress
import os

from pressfleet.validate import InvalidInput, domain as check_domain

RESOLVER_ENV = "PRESSFLEET_DNS_RESOLVER"


def parse_resolver(value: str | None) -> tuple[str, int] | None:
    """ADDRESS[:PORT] (an IP address; port 53 by default) or None for the system's resolver."""
    value = (value or os.environ.get(RESOLVER_ENV) or "").strip()
    if not value:
        return None
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "53")
    try:
        address = str(ipaddress.ip_address(host.strip("[]")))
        number = int(port)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a resolver address (ADDRESS or ADDRESS:PORT)") from None
    if not 1 <= number <= 65535:
        raise InvalidInput(f"{value!r} is not a resolver address (port 1-65535)")
    return address, number


def addresses(name: str, resolver: str | None = None, timeout_s: float = 5.0) -> list[str]:
    """NAME's A and AAAA addresses (empty when it has none or does not exist)."""
    import dns.exception
    import dns.resolver

    name = check_domain(name)
    server = parse_resolver(resolver)
    res = dns.resolver.Resolver(configure=server is None)
    if server is not None:
        res.nameservers, res.port = [server[0]], server[1]
    res.lifetime = timeout_s
    found: list[str] = []
    for kind in ("A", "AAAA"):
        try:
            found += [r.to_text() for r in res.resolve(name, kind)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
        except dns.exception.Timeout:
            raise InvalidInput(f"the resolver did not answer for {name} within {timeout_s:.0f} s") from None
    return found


def server_addresses(server_address: str, resolver: str | None = None) -> set[str]:
    """The server's own addresses: the Server block's address, or what its name resolves to."""
    try:
        return {str(ipaddress.ip_address(server_address))}
    except ValueError:
        return set(addresses(server_address, resolver))


def check_points_here(name: str, server_address: str, resolver: str | None = None) -> list[str]:
    """Refuses (InvalidInput) unless every address NAME resolves to is the server's: a certificate over HTTP-01
    would fail, or visitors would land elsewhere. Returns the addresses found."""
    found = addresses(name, resolver)
    if not found:
        raise InvalidInput(f"{name} does not resolve (no A or AAAA record): point it at {server_address} first")
    mine = server_addresses(server_address, resolver)
    others = sorted(set(found) - mine)
    if others or not mine:
        raise InvalidInput(f"{name} resolves to {', '.join(sorted(set(found)))}, not (only) to this server "
                           f"{server_address}: point it here first")
    return found
