"""SSL contexts, built one way for every server and client in Flotilla.

TLS 1.2 is the floor (1.3 preferred, as Python's defaults negotiate); clients always
verify the peer against Flotilla's CA and check the host name, so a certificate issued
for one address is useless at another.
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path


def server_ssl_context(cert: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context; with ``client_ca`` the peer must present a certificate from it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    return ctx


def client_ssl_context(
    ca: Path, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context trusting only ``ca``, optionally presenting a client certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


#: The environment variable every process reads its CA file from when no flag names one.
CA_FILE_ENV = "FLOTILLA_CA_FILE"


class CaFileError(ValueError):
    """The CA file named by a flag, the environment or a config cannot be used."""


def ca_file_from_env() -> Path | None:
    value = os.environ.get(CA_FILE_ENV)
    return Path(value) if value else None


@functools.cache
def _verifying_context(ca: str | None) -> ssl.SSLContext:
    if ca is None:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        return client_ssl_context(Path(ca))
    except FileNotFoundError:
        raise CaFileError(f"CA file {ca} not found") from None
    except (OSError, ssl.SSLError) as exc:
        raise CaFileError(f"cannot use the CA file {ca}: {exc}") from None


def verifying_context(ca: Path | None) -> ssl.SSLContext:
    """The client context trusting ``ca`` (the system's roots when None), built once per
    process and CA file: building one reads and parses the file, and a process that
    opens many connections (the CLI's agent calls, every informer of a feed) must not
    pay that, nor lose TLS session reuse, on each. Raises `CaFileError` naming the file
    when it is missing or not a certificate."""
    return _verifying_context(str(ca.resolve()) if ca is not None else None)
