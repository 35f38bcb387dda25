"""Bearer tokens: generation, storage as SHA-256 hashes, constant-time checks.

Tokens are 256-bit random strings (``secrets.token_urlsafe(32)``). The data dir keeps
only their SHA-256 digests, so a leaked ``tokens.json`` grants nothing. A slow password
hash (bcrypt, scrypt, argon2) exists to make *guessing* expensive when the secret has
little entropy; with 2**256 possible tokens no amount of hashing speed makes a search
feasible, so a fast hash loses nothing and keeps every request cheap.

Each record has a ``name`` and a ``role``; everything is ``admin`` today, and the role
travels with the request (``request.state.principal``) so role-based checks can be
added at one place later without touching the token format.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TOKENS_FILE = "tokens.json"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    role: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling; what a future authorizer will look at."""

    name: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(data_dir: Path) -> list[TokenRecord]:
    path = data_dir / TOKENS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    return [TokenRecord(str(r["name"]), str(r["role"]), str(r["sha256"]))
            for r in raw.get("tokens", [])]


def _write_tokens(data_dir: Path, records: list[TokenRecord]) -> None:
    """Atomic replace with mode 0600: a crash leaves the old file or the new, never half."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKENS_FILE
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"tokens": [asdict(r) for r in records]}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def add_token(data_dir: Path, name: str, role: str = ADMIN) -> str:
    """Create a token, store its hash, and return the token (the only time it is seen)."""
    token = secrets.token_urlsafe(32)
    records = [r for r in load_tokens(data_dir) if r.name != name]
    records.append(TokenRecord(name, role, hash_token(token)))
    _write_tokens(data_dir, records)
    return token


def ensure_admin_token(data_dir: Path) -> str | None:
    """Create the admin token if there is none; return it (to print once), else None."""
    if any(r.role == ADMIN for r in load_tokens(data_dir)):
        return None
    return add_token(data_dir, ADMIN, ADMIN)


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` against the stored hashes.

    Built from a data dir, it re-reads ``tokens.json`` when the file changes (checked at
    most once per ``recheck`` seconds), so a token added while the server runs works
    without a restart and a removed one stops working.
    """

    def __init__(
        self, records: list[TokenRecord], *, path: Path | None = None, recheck: float = 1.0
    ) -> None:
        self._records = list(records)
        self._path = path
        self._recheck = recheck
        self._next_check = time.monotonic() + recheck
        self._stamp = self._file_stamp()

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Authenticator:
        return cls(load_tokens(data_dir), path=data_dir / TOKENS_FILE)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _maybe_reload(self) -> None:
        if self._path is None or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self._recheck
        stamp = self._file_stamp()
        if stamp != self._stamp:
            try:
                self._records = load_tokens(self._path.parent)
            except (OSError, ValueError, KeyError):
                return  # a half-written file (not ours: ours are atomic); keep the old set
            self._stamp = stamp

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        self._maybe_reload()
        digest = hash_token(token.strip())
        found: TokenRecord | None = None
        # Compare against every record, without an early exit, so timing says nothing
        # about which (or whether any) hash shares a prefix with the guess.
        for record in self._records:
            if hmac.compare_digest(digest, record.sha256):
                found = record
        return Principal(found.name, found.role) if found else None
