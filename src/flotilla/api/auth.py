"""Bearer tokens: generation, storage as SHA-256 hashes, constant-time checks.

Tokens are 256-bit random strings (``secrets.token_urlsafe(32)``). The data dir keeps
only their SHA-256 digests, so a leaked ``tokens.json`` grants nothing. A slow password
hash (bcrypt, scrypt, argon2) exists to make *guessing* expensive when the secret has
little entropy; with 2**256 possible tokens no amount of hashing speed makes a search
feasible, so a fast hash loses nothing and keeps every request cheap.

Each record names who holds it (``name``, the user the authorizer and the audit log
see), the role it is bound to, optionally the one namespace that role applies in, the
member cluster an agent credential is bound to, and when it expires. The
`flotilla.api.authz` package decides what the resulting `Principal` may do.
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

from flotilla.pki.files import ensure_private_dir

TOKENS_FILE = "tokens.json"
ADMIN = "admin"


#: The role of an agent credential (`agent_role_for`): what ``--cluster C`` makes.
AGENT = "agent"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    role: str
    sha256: str
    #: "" = the role applies in every namespace; else only in this one.
    namespace: str = ""
    #: The member cluster an agent credential is bound to ("" for people and the edge).
    cluster: str = ""
    #: Unix time after which the token is refused (0: never expires).
    expires: float = 0.0
    created: float = 0.0

    def expired(self, now: float | None = None) -> bool:
        return bool(self.expires) and (time.time() if now is None else now) >= self.expires


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: what the authorizer and the audit log look at."""

    name: str
    role: str
    namespace: str = ""
    cluster: str = ""

    @property
    def is_agent(self) -> bool:
        return self.role == AGENT and bool(self.cluster)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(data_dir: Path) -> list[TokenRecord]:
    path = data_dir / TOKENS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    return [TokenRecord(str(r["name"]), str(r["role"]), str(r["sha256"]),
                        str(r.get("namespace") or ""), str(r.get("cluster") or ""),
                        float(r.get("expires") or 0), float(r.get("created") or 0))
            for r in raw.get("tokens", [])]


def _write_tokens(data_dir: Path, records: list[TokenRecord]) -> None:
    """Atomic replace with mode 0600: a crash leaves the old file or the new, never half."""
    ensure_private_dir(data_dir)
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


def add_token(data_dir: Path, name: str, role: str = ADMIN, *, namespace: str = "",
              cluster: str = "", ttl: float | None = None) -> str:
    """Create a token, store its hash, and return the token (the only time it is seen).

    A token of the same name is replaced (its old secret stops working), so re-running
    `flotilla up` or ``flotilla token create`` rotates a credential.
    """
    token = secrets.token_urlsafe(32)
    now = time.time()
    records = [r for r in load_tokens(data_dir) if r.name != name]
    records.append(TokenRecord(name, role, hash_token(token), namespace, cluster,
                               now + ttl if ttl else 0.0, now))
    _write_tokens(data_dir, records)
    return token


def revoke_token(data_dir: Path, name: str) -> bool:
    """Remove the token called ``name``; False if there was none. A running server
    refuses it within `Authenticator`'s recheck interval."""
    records = load_tokens(data_dir)
    kept = [r for r in records if r.name != name]
    if len(kept) == len(records):
        return False
    _write_tokens(data_dir, kept)
    return True


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
        principal, _why = self.check(authorization)
        return principal

    def check(self, authorization: str | None) -> tuple[Principal | None, str]:
        """The caller, or None and why not (for the 401's message)."""
        if not authorization:
            return None, "no bearer token"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "the bearer token is not valid"
        self._maybe_reload()
        digest = hash_token(token.strip())
        found: TokenRecord | None = None
        # Compare against every record, without an early exit, so timing says nothing
        # about which (or whether any) hash shares a prefix with the guess.
        for record in self._records:
            if hmac.compare_digest(digest, record.sha256):
                found = record
        if found is None:
            return None, "the bearer token is not valid"
        if found.expired():
            return None, f"the token {found.name!r} has expired"
        return Principal(found.name, found.role, found.namespace, found.cluster), ""
