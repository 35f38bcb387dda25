"""Where the etcd cluster is and how to reach it: ``etcd://host:port[,host:port...][/prefix/]``.

The optional path is the key prefix (default ``/flotilla/``), so that several control
planes (or the tests) can share one etcd without seeing each other's objects.

Parsed once, at the command line, so a bad URL or a missing certificate is refused with
a message naming it before the server starts. Several endpoints become one gRPC channel
over all of them (``pick_first``: it fails over to the next member when the one in use
goes away), which is what the etcd Go client does too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

SCHEME = "etcd://"
#: every key Flotilla writes starts with this, so a shared etcd can hold other data
DEFAULT_PREFIX = "/flotilla/"


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    def describe(self) -> str:
        """The endpoints as a user wrote them, for error messages."""
        scheme = "https" if self.tls else "http"
        return ",".join(f"{scheme}://{_hostport(h, p)}" for h, p in self.endpoints)

    def target(self) -> str:
        """A gRPC target for all endpoints: an address list, or one DNS name."""
        hosts = [h for h, _ in self.endpoints]
        if len(self.endpoints) == 1 and not _is_ip(hosts[0]):
            host, port = self.endpoints[0]
            return f"dns:///{host}:{port}"
        if not all(_is_ip(h) for h in hosts):
            raise ValueError("--store etcd://: with several endpoints give IP addresses "
                             "(or one DNS name that resolves to every member)")
        family = "ipv6" if all(":" in h for h in hosts) else "ipv4"
        if family == "ipv4" and any(":" in h for h in hosts):
            raise ValueError("--store etcd://: do not mix IPv4 and IPv6 endpoints")
        return f"{family}:" + ",".join(_hostport(h, p) for h, p in self.endpoints)

    def channel(self) -> Any:
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.lb_policy_name", "pick_first"),
        ]
        if not self.tls:
            return grpc.aio.insecure_channel(self.target(), options=options)
        assert self.ca_file is not None
        hosts = {h for h, _ in self.endpoints}
        if len(self.endpoints) > 1 and len(hosts) == 1:
            # An address-list target has no single authority, so gRPC checks every
            # member's certificate against the whole list and fails; members on one
            # host (`flotilla up --ha`: loopback ports) are checked against that host.
            options.append(("grpc.ssl_target_name_override", next(iter(hosts))))
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes(),
            private_key=self.key_file.read_bytes() if self.key_file else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file else None,
        )
        return grpc.aio.secure_channel(self.target(), creds, options=options)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _readable(path: Path | None, flag: str) -> Path | None:
    if path is None:
        return None
    try:
        path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None
    return path


def parse_etcd_url(
    url: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> EtcdConfig:
    """``etcd://host:port[,host:port...][/prefix/]`` into an `EtcdConfig`, or a ValueError
    saying what is wrong. A path in the URL is the key prefix (it wins over ``prefix``).
    TLS is on when a CA file is given; a client certificate needs its key."""
    if not url.startswith(SCHEME):
        raise ValueError(f"--store: an etcd URL starts with {SCHEME}, got {url!r}")
    rest, slash, path = url[len(SCHEME):].partition("/")
    if slash and path.strip("/"):
        prefix = "/" + path.strip("/") + "/"
    if not rest:
        raise ValueError(f"--store {url}: no endpoint; e.g. etcd://127.0.0.1:2379")
    endpoints = []
    for part in rest.split(","):
        host, sep, port = part.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"--store {url}: endpoint {part!r} is not HOST:PORT")
        endpoints.append((host, int(port)))
    if (cert_file is None) != (key_file is None):
        raise ValueError("--etcd-cert-file and --etcd-key-file go together (a client "
                         "certificate needs its key)")
    if cert_file is not None and ca_file is None:
        raise ValueError("--etcd-cert-file needs --etcd-ca-file (TLS to etcd is on only "
                         "with the CA that signed its server certificate)")
    if not prefix.startswith("/") or not prefix.endswith("/"):
        raise ValueError(f"etcd key prefix must start and end with '/', got {prefix!r}")
    config = EtcdConfig(tuple(endpoints), prefix, _readable(ca_file, "--etcd-ca-file"),
                        _readable(cert_file, "--etcd-cert-file"),
                        _readable(key_file, "--etcd-key-file"))
    config.target()  # refuse an endpoint list gRPC cannot dial, now
    return config
