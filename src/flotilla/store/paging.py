"""The list continue token, shared by every Store implementation.

A token says where the next page starts (after key (namespace, name)) and at which
revision the listing began, so that every page shows the state at that one revision,
like an etcd range read at a fixed revision. It is bound to the resource and namespace
filter it was issued for, so a token cannot be replayed against another list.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContinueToken:
    """Where the next page starts: after key (namespace, name), for a list that began at
    ``revision``. Bound to the resource and namespace filter it was issued for."""

    revision: int
    resource: str
    namespace: str | None
    after: tuple[str, str]

    def encode(self) -> str:
        raw = json.dumps(
            {"v": 1, "rev": self.revision, "res": self.resource, "ns": self.namespace,
             "after": list(self.after)},
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, resource: str, namespace: str | None) -> ContinueToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            parsed = cls(int(data["rev"]), str(data["res"]), data["ns"],
                         (str(data["after"][0]), str(data["after"][1])))
        except (binascii.Error, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"malformed continue token {token[:40]!r}") from exc
        if parsed.resource != resource or parsed.namespace != namespace:
            raise ValueError("continue token was issued for a different list (resource or"
                             " namespace differ)")
        return parsed
