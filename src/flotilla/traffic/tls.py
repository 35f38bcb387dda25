"""TLS termination at the gateway: one `ssl.SSLContext` per certificate, chosen per
connection by SNI, and swapped without touching connections already open.

Why this shape:
- The listener has one base context whose ``sni_callback`` looks the client's server
  name up in a host table and switches the handshake to that host's context. The table
  is replaced whole on every model (`Certificates.apply`), so a rotated Secret is used
  by the next handshake while every open connection keeps the session it negotiated:
  reloading drops nothing.
- Contexts are cached by the digest of their PEM pair: a model rebuilt because an
  endpoint moved costs a dictionary lookup per host, not a PEM parse and a key load.
- A pair that does not load (malformed PEM, key not matching the certificate, expired,
  Secret gone or of the wrong type) never replaces a good one: the host keeps the last
  good context of its Secret, and the problem is logged once per cause and counted in
  ``flotilla_gateway_tls_certificate_errors_total``. A host that never had a good one
  gets no certificate: its handshakes fail with ``unrecognized_name`` rather than
  serving some other host's certificate.
- `ssl` loads certificate chains from files only; the pair goes through an anonymous
  in-memory file (``memfd_create``), so a private key is never written to disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from flotilla.traffic.model import CertSource

if TYPE_CHECKING:
    from flotilla.traffic.metrics import GatewayMetrics

log = logging.getLogger(__name__)

#: Clients that offer nothing newer are refused (as Mozilla's "intermediate" profile).
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class CertificateError(ValueError):
    """A PEM pair cannot serve; the message says what is wrong with which part."""


@dataclass(frozen=True, slots=True)
class Loaded:
    context: ssl.SSLContext
    digest: bytes
    not_after: float


def _configure(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = MINIMUM_VERSION
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _public_bytes(key: CertificatePublicKeyTypes | PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def check_pair(cert_pem: bytes, key_pem: bytes, now: dt.datetime | None = None) -> float:
    """Validate a PEM pair with clear messages; returns the leaf's expiry (Unix time)."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateError("tls.crt is not a PEM certificate (expected "
                               "'-----BEGIN CERTIFICATE-----' blocks)") from None
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError("tls.key is encrypted; the gateway needs it unencrypted") \
            from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError("tls.key is not a PEM private key") from None
    leaf = chain[0]
    if _public_bytes(leaf.public_key()) != _public_bytes(key.public_key()):
        raise CertificateError("tls.key does not match the first certificate in tls.crt")
    now = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise CertificateError(f"tls.crt expired at {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    if leaf.not_valid_before_utc > now:
        raise CertificateError(
            f"tls.crt is not valid before {leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}")
    return leaf.not_valid_after_utc.timestamp()


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path whose content is ``data`` and that lives in memory only (Linux); a private
    temporary file elsewhere."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("flotilla-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="flotilla-tls-") as d:  # pragma: no cover
        path = Path(d) / "pair.pem"
        path.touch(mode=0o600)
        path.write_bytes(data)
        yield str(path)


def server_context(cert_pem: bytes, key_pem: bytes) -> tuple[ssl.SSLContext, float]:
    """A serving context for one PEM pair and the leaf's expiry (Unix time); the pair is
    validated first (`CertificateError`)."""
    not_after = check_pair(cert_pem, key_pem)
    ctx = _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    with _memory_file(cert_pem.rstrip(b"\n") + b"\n" + key_pem) as path:
        try:
            ctx.load_cert_chain(path)
        except ssl.SSLError as e:
            raise CertificateError(f"the pair does not load: {e.reason or e}") from None
    return ctx, not_after


def match(table: Mapping[str, Loaded], name: str | None) -> Loaded | None:
    """The entry for a server name as routes match hosts: exact, ``*.suffix``, ``*``."""
    if name:
        name = name.lower().rstrip(".")
        found = table.get(name)
        if found is not None:
            return found
        dot = name.find(".")
        if dot > 0:
            found = table.get("*" + name[dot:])
            if found is not None:
                return found
    return table.get("*")


class Certificates:
    """The gateway's certificates: host -> context, kept from model to model."""

    def __init__(self, metrics: GatewayMetrics | None = None) -> None:
        self.metrics = metrics
        #: The base context the TLS listener is created with (its SNI callback switches).
        self.listener_context = _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        self.listener_context.sni_callback = self._sni
        #: Live table; replaced whole by `apply`.
        self.hosts: dict[str, Loaded] = {}
        self._by_digest: dict[bytes, Loaded] = {}
        #: Secret id -> its last pair that loaded.
        self._last_good: dict[str, Loaded] = {}
        #: Secret id -> the problem last reported for it (reported once per cause).
        self.problems: dict[str, str] = {}

    def _load(self, source: CertSource) -> Loaded:
        if source.problem:
            raise CertificateError(source.problem)
        digest = hashlib.sha256(source.cert_pem + b"\0" + source.key_pem).digest()
        cached = self._by_digest.get(digest)
        if cached is not None:
            return cached
        ctx, not_after = server_context(source.cert_pem, source.key_pem)
        loaded = Loaded(ctx, digest, not_after)
        self._by_digest[digest] = loaded
        return loaded

    def apply(self, certificates: Mapping[str, CertSource]) -> list[str]:
        """Make ``certificates`` (a model's host -> source) live; returns the problems,
        each naming the Secret. A bad source keeps its Secret's last good context."""
        hosts: dict[str, Loaded] = {}
        problems: dict[str, str] = {}
        loaded_now: dict[str, Loaded] = {}
        for host, source in certificates.items():
            loaded = loaded_now.get(source.secret)
            if loaded is None and source.secret not in problems:
                try:
                    loaded = self._load(source)
                except CertificateError as e:
                    problems[source.secret] = str(e)
                else:
                    loaded_now[source.secret] = loaded
            if loaded is None:
                loaded = self._last_good.get(source.secret)
            if loaded is not None:
                hosts[host] = loaded
        wanted = {c.secret for c in certificates.values()}
        self._last_good = {**{s: g for s, g in self._last_good.items() if s in wanted},
                           **loaded_now}
        in_use = {g.digest for g in self._last_good.values()}
        self._by_digest = {d: g for d, g in self._by_digest.items() if d in in_use}
        self.hosts = hosts
        out = []
        for secret, problem in problems.items():
            kept = " (serving its last good certificate)" if secret in self._last_good else ""
            named = problem if problem.startswith(f"Secret {secret}") \
                else f"Secret {secret}: {problem}"
            message = f"TLS certificate: {named}{kept}"
            out.append(message)
            if self.problems.get(secret) != problem:
                log.warning("%s", message)
                if self.metrics is not None:
                    self.metrics.tls_errors.labels(secret).inc()
        self.problems = problems
        if self.metrics is not None:
            self.metrics.tls_certificates.set(len(self._last_good))
            for secret, g in self._last_good.items():
                self.metrics.tls_expiry.labels(secret).set(g.not_after)
        return out

    def _sni(self, sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None,
             ctx: ssl.SSLContext) -> int | None:
        found = match(self.hosts, name)
        if found is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        if found.context is not ctx:
            sslobj.context = found.context
        return None
