"""Serving pairs that match where a process listens: issued when missing or stale.

The API server, `flotilla init`, `flotilla up` and `flotilla cert create` all need "a
certificate from this data directory's CA valid for these addresses"; one function
decides when an existing pair still fits (same CA, every address in its SANs, not near
expiry) so that a restart on the same address keeps its certificate and a move to a new
address gets a new one instead of a handshake that fails on the host name.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from flotilla.pki.authority import ensure_ca
from flotilla.pki.files import ensure_private_dir
from flotilla.pki.layout import PkiLayout

#: A pair closer than this to its expiry is replaced at the next start.
RENEW_BEFORE = dt.timedelta(days=30)
_LOOPBACK = ("localhost", "127.0.0.1")


def serving_hosts(host: str) -> list[str]:
    """The SANs for a listener on ``host``: the host itself, and the names local clients
    use (``localhost``, 127.0.0.1); a wildcard bind adds this machine's name."""
    host = host.strip("[]") or "127.0.0.1"
    hosts = [host]
    if host in ("0.0.0.0", "::"):
        hosts = [socket.gethostname()]
    return list(dict.fromkeys([*hosts, *_LOOPBACK]))


def _covers(cert: x509.Certificate, hosts: Iterable[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    names = set(san.get_values_for_type(x509.DNSName))
    for host in hosts:
        try:
            if str(ipaddress.ip_address(host)) not in ips:
                return False
        except ValueError:
            if host not in names:
                return False
    return True


def pair_fits(cert_path: Path, key_path: Path, ca_cert: x509.Certificate,
              hosts: Iterable[str]) -> bool:
    """Whether the pair at these paths was issued by ``ca_cert``, names every host and
    is not about to expire."""
    if not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    soon = dt.datetime.now(dt.UTC) + RENEW_BEFORE
    return (cert.issuer == ca_cert.subject and cert.not_valid_after_utc > soon
            and _covers(cert, hosts))


def ensure_serving_pair(layout: PkiLayout, cert: Path, key: Path, common_name: str,
                        hosts: Iterable[str]) -> bool:
    """Make ``cert``/``key`` a pair from ``layout``'s CA (created on first use) valid for
    ``hosts``; returns True when a new pair was issued."""
    hosts = list(hosts)
    ca = ensure_ca(layout.pki_dir)
    if pair_fits(cert, key, ca.cert, hosts):
        return False
    if key.parent.is_relative_to(layout.pki_dir):
        ensure_private_dir(key.parent)
    ca.issue_server(common_name, hosts).write(cert, key)
    return True


def ensure_server_pair(data_dir: Path, host: str) -> PkiLayout:
    """The API server's pair for a listener on ``host`` (see `ensure_serving_pair`)."""
    layout = PkiLayout(data_dir)
    ensure_serving_pair(layout, layout.server_cert, layout.server_key, "flotilla-api",
                        serving_hosts(host))
    return layout
