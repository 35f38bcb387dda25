"""Client address → region, by a configurable table of CIDRs (longest prefix wins).

A linear scan over prefixes sorted longest first: tables are a handful of entries per
region, and a scan of a few dozen networks costs less than a query's parsing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class GeoTable:
    entries: tuple[tuple[IPNetwork, str], ...] = ()

    @classmethod
    def from_mapping(cls, table: Mapping[str, str] | None) -> GeoTable:
        """Compile ``{"10.1.0.0/16": "eu-west", ...}``; a bad CIDR raises ValueError naming it."""
        entries: list[tuple[IPNetwork, str]] = []
        for cidr, region in (table or {}).items():
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"geo table: {cidr!r} is not a CIDR ({exc})") from None
            if not isinstance(region, str) or not region:
                raise ValueError(f"geo table: region of {cidr} must be a non-empty string")
            entries.append((net, region))
        entries.sort(key=lambda e: e[0].prefixlen, reverse=True)
        return cls(tuple(entries))

    def region_of(self, address: IPAddress) -> str | None:
        for net, region in self.entries:
            if address.version == net.version and address in net:
                return region
        return None
