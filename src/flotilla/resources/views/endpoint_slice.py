"""An EndpointSlice (the pods one cluster's agent reports for a Service) as discovery,
the gateway and the DNS read it.

The rule shared here: an endpoint takes traffic only when its agent says ``ready: true``
exactly (a missing or odd value is not ready), and the gateway proxies to its first
TCP/HTTP port. Reading the slice once, in one place, keeps the three consumers from
disagreeing about what a slice says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources.views.fields import Meta, entries, mapping, text

#: Protocols the gateway can proxy (an endpoint port without one is TCP).
PROXIED_PROTOCOLS = frozenset({"TCP", "HTTP"})


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str = ""
    #: None when the stored port is not a whole number.
    port: int | None = None
    #: As stored, upper-cased; "TCP" when absent.
    protocol: str = "TCP"

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SlicePort:
        port = raw.get("port")
        return cls(text(raw.get("name")),
                   port if isinstance(port, int) and not isinstance(port, bool) else None,
                   str(raw.get("protocol") or "TCP").upper())


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    """One reported pod: where it listens and whether its agent finds it ready."""

    address: str = ""
    #: ``ready`` is exactly ``true``: anything else (missing, "yes") takes no traffic.
    ready: bool = False
    pod: str = ""
    zone: str = ""
    ports: tuple[SlicePort, ...] = ()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SliceEndpoint:
        return cls(text(raw.get("address")), raw.get("ready") is True, text(raw.get("pod")),
                   text(raw.get("zone")),
                   tuple(SlicePort.of(p) for p in entries(raw.get("ports"))))

    @property
    def proxied_port(self) -> int | None:
        """The port the gateway sends requests to: the first TCP/HTTP one."""
        return next((p.port for p in self.ports
                     if p.port is not None and p.protocol in PROXIED_PROTOCOLS), None)


@dataclass(frozen=True, slots=True)
class EndpointSliceView:
    """What every consumer reads of an EndpointSlice. Build it with `of`."""

    meta: Meta = field(default_factory=Meta)
    service: str = ""
    cluster: str = ""
    region: str = ""
    zone: str = ""
    #: ``spec.ingress.address`` as stored ("" if none).
    ingress_address: str = ""
    endpoints: tuple[SliceEndpoint, ...] = ()

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> EndpointSliceView:
        """The view of a stored EndpointSlice dict; never raises."""
        obj = mapping(obj)
        spec = mapping(obj.get("spec"))
        return cls(
            meta=Meta.of(obj.get("metadata")),
            service=text(spec.get("service")),
            cluster=text(spec.get("cluster")),
            region=text(spec.get("region")),
            zone=text(spec.get("zone")),
            ingress_address=text(mapping(spec.get("ingress")).get("address")),
            endpoints=tuple(SliceEndpoint.of(e) for e in entries(spec.get("endpoints"))),
        )

    @property
    def ready_endpoints(self) -> tuple[SliceEndpoint, ...]:
        return tuple(e for e in self.endpoints if e.ready)
