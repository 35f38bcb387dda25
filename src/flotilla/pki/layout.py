"""Where a data directory keeps its key material: one map every process reads.

The API server, `flotilla up`, `flotilla init`, the store's encryption at rest and the
tests all need the same paths; spelling them once here keeps a key from being written
in one place and looked for in another.

    <data-dir>/            0700
      pki/                 0700
        ca.crt             0644  the CA every client verifies against
        ca.key             0600
        server.crt/.key    0600  the API server's serving pair (SANs: its listen address)
        agents/NAME.crt/.key 0600 the serving pair of cluster NAME's agent endpoint
        secrets.key        0600  AES-256-GCM key for Secrets at rest
      credentials/         0700  one token file per component `flotilla up` starts (0600)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flotilla.pki.authority import CA_CERT, CA_KEY


@dataclass(frozen=True, slots=True)
class PkiLayout:
    """The key-material paths of one data directory."""

    data_dir: Path

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / CA_KEY

    @property
    def server_cert(self) -> Path:
        return self.pki_dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.pki_dir / "server.key"

    def agent_cert(self, cluster: str) -> Path:
        """The serving certificate of cluster ``cluster``'s agent endpoint."""
        return self.pki_dir / "agents" / f"{cluster}.crt"

    def agent_key(self, cluster: str) -> Path:
        return self.pki_dir / "agents" / f"{cluster}.key"

    @property
    def secrets_key(self) -> Path:
        return self.pki_dir / "secrets.key"

    @property
    def credentials_dir(self) -> Path:
        return self.data_dir / "credentials"

    def credential(self, component: str) -> Path:
        """The token file of one component (``agent-east-1``, ``gateway``, ``dns``)."""
        return self.credentials_dir / f"{component}.token"
