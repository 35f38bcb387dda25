"""The encryption-at-rest envelope: one object's secret body, sealed with AES-256-GCM.

Shaped after Kubernetes' ``aesgcm`` provider: the stored value is a versioned text
``k8s:enc:aesgcm:v1:<key name>:<base64(nonce || ciphertext || tag)>``, so a later
format or key rotation can tell old values from new ones by their prefix. The object's
storage key (``resource/namespace/name``) is the GCM associated data: a ciphertext
copied onto another object's row fails authentication instead of decrypting there.

The key is 32 random bytes kept base64-encoded in the data directory
(`flotilla.pki.layout.PkiLayout.secrets_key`, mode 0600), created by the API server at
its first start.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flotilla.pki.files import ensure_private_dir, write_private
from flotilla.store.base import StoreError

PREFIX = "k8s:enc:aesgcm:v1:"
#: the name of the one key there is today; rotation would add others beside it
KEY_NAME = "key1"
_NONCE_BYTES = 12
_KEY_BYTES = 32


class DecryptionError(StoreError):
    """A stored value cannot be opened: wrong or missing key, damaged or moved data."""


class KeyFileError(Exception):
    """The key file exists but is not a key (it is never replaced silently)."""


class Envelope:
    """Seals and opens values with one AES-256-GCM key."""

    def __init__(self, key: bytes, *, name: str = KEY_NAME, source: str = "") -> None:
        if len(key) != _KEY_BYTES:
            raise KeyFileError(f"an AES-256 key is {_KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.name = name
        #: where the key came from, named in errors
        self.source = source or "the secrets key"

    @classmethod
    def load_or_create(cls, path: Path) -> Envelope:
        """The key in ``path``; a new random one written 0600 (in a 0700 folder) if there
        is none yet."""
        if not path.exists():
            ensure_private_dir(path.parent)
            write_private(path, base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        try:
            text = path.read_bytes().strip()
            key = base64.b64decode(text, validate=True)
        except (OSError, binascii.Error) as exc:
            raise KeyFileError(f"cannot read the secrets key {path}: {exc}") from exc
        try:
            return cls(key, source=str(path))
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc} (expected base64 of {_KEY_BYTES} random "
                               "bytes)") from None

    def seal(self, plaintext: bytes, associated: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, associated.encode())
        return f"{PREFIX}{self.name}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str, associated: str) -> bytes:
        """The plaintext of ``value`` sealed for ``associated``, or DecryptionError."""
        if not value.startswith(PREFIX):
            raise DecryptionError(f"{associated}: stored value has an unknown encryption "
                                  f"format (expected prefix {PREFIX!r})")
        name, sep, payload = value[len(PREFIX):].partition(":")
        if not sep or name != self.name:
            raise DecryptionError(f"{associated}: encrypted with key {name!r}, which "
                                  f"{self.source} is not (it holds {self.name!r})")
        try:
            raw = base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise DecryptionError(f"{associated}: encrypted value is damaged "
                                  "(not base64)") from None
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                      associated.encode())
        except (InvalidTag, ValueError):
            raise DecryptionError(
                f"{associated}: cannot decrypt: {self.source} is not the key it was "
                "written with, or the value was damaged or moved from another object"
            ) from None
