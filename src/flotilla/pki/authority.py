"""Flotilla's certificate authority: created once per data directory, issues leaves.

Keys are ECDSA P-256: as strong as RSA-3072 for TLS, and cheap enough to issue one
certificate per agent at start-up and to make handshakes cheap at the gateway. The CA is
valid for ten years and leaves for one, as kubeadm does; rotating a leaf is issuing a
new one, which `flotilla up` does at every start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flotilla.pki.files import ensure_private_dir, write_private

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CA_DAYS = 3650
LEAF_DAYS = 365
#: Issued certificates start this far in the past, so a peer whose clock is slightly
#: behind does not see a certificate "not yet valid".
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IssuedPair:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, cert: Path, key: Path) -> None:
        """Certificate 0644 (public), key 0600."""
        write_private(cert, self.cert_pem, mode=0o644)
        write_private(key, self.key_pem)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(h.strip("[]") for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class CertificateAuthority:
    """A CA certificate with its key, able to issue server and client certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self._key = key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, common_name: str = "flotilla-ca") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def save(self, directory: Path) -> None:
        ensure_private_dir(directory)
        write_private(directory / CA_CERT, self.cert_pem, mode=0o644)
        write_private(directory / CA_KEY, _key_pem(self._key))

    def _issue(self, subject: x509.Name,
               usage: x509.ObjectIdentifier | list[x509.ObjectIdentifier],
               hosts: Iterable[str] = (), days: int = LEAF_DAYS) -> IssuedPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage if isinstance(usage, list)
                                                 else [usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
        )
        hosts = list(hosts)
        if hosts:
            builder = builder.add_extension(_san(hosts), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return IssuedPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_server(self, common_name: str, hosts: Iterable[str],
                     days: int = LEAF_DAYS) -> IssuedPair:
        """A serving certificate valid for every name/address in ``hosts`` (SANs)."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._issue(subject, ExtendedKeyUsageOID.SERVER_AUTH, hosts, days)

    def issue_peer(self, common_name: str, hosts: Iterable[str],
                   days: int = LEAF_DAYS) -> IssuedPair:
        """A certificate that both serves and dials, as an etcd member's peer
        certificate must (members are each other's servers and clients)."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._issue(subject, [ExtendedKeyUsageOID.SERVER_AUTH,
                                     ExtendedKeyUsageOID.CLIENT_AUTH], hosts, days)

    def issue_client(self, common_name: str, organization: str | None = None,
                     days: int = LEAF_DAYS) -> IssuedPair:
        """A client certificate whose subject names the identity (CN) and group (O)."""
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        return self._issue(x509.Name(attrs), ExtendedKeyUsageOID.CLIENT_AUTH, (), days)


def load_ca(directory: Path) -> CertificateAuthority:
    """The CA saved in ``directory``; FileNotFoundError when there is none."""
    cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / CA_KEY}: expected an EC private key")
    return CertificateAuthority(cert, key)


def ensure_ca(directory: Path) -> CertificateAuthority:
    """Load the CA in ``directory``, creating it on first use."""
    try:
        return load_ca(directory)
    except FileNotFoundError:
        ca = CertificateAuthority.create()
        ca.save(directory)
        return ca
