"""Certificates and private files: the one home of everything TLS in Flotilla.

Every hop is TLS by default, so every process needs the same few things: a CA that
`flotilla init`/`flotilla up` create once, certificates issued from it (servers with the
addresses they listen on, clients with their identity in the subject), SSL contexts
built the same way everywhere, and secret files that are never readable by anyone but
their owner. This package sits at the bottom of the layering (it imports nothing of
Flotilla's) so the API server, agents, gateway, DNS, `up` and the CLI all share it.
"""

from flotilla.pki.authority import (
    CertificateAuthority,
    IssuedPair,
    ensure_ca,
    load_ca,
)
from flotilla.pki.contexts import (
    CA_FILE_ENV,
    CaFileError,
    ca_file_from_env,
    client_ssl_context,
    server_ssl_context,
    verifying_context,
)
from flotilla.pki.files import ensure_private_dir, write_private
from flotilla.pki.layout import PkiLayout
from flotilla.pki.serving import ensure_server_pair, ensure_serving_pair, serving_hosts

__all__ = [
    "CA_FILE_ENV",
    "CaFileError",
    "CertificateAuthority",
    "IssuedPair",
    "PkiLayout",
    "ca_file_from_env",
    "client_ssl_context",
    "ensure_ca",
    "ensure_private_dir",
    "ensure_server_pair",
    "ensure_serving_pair",
    "load_ca",
    "server_ssl_context",
    "serving_hosts",
    "verifying_context",
    "write_private",
]
