"""Encryption at rest as a Store over a Store: Secrets (and Works carrying one) sealed.

It sits at the `flotilla.store.base.Store` seam, so any backend under it (the SQLite
store today, an etcd store later) keeps those values encrypted with no change of its
own, as Kubernetes' apiserver encrypts before etcd ever sees a value. Writes seal;
reads, lists, the objects writes return and watch events are opened again, so every
caller above the seam sees plaintext.

What is sealed is the whole object but ``metadata.resourceVersion`` (which the backend
assigns). The backend keeps in the clear only what it must interpret: ``apiVersion``,
``kind``, ``metadata.namespace``, ``metadata.name`` and ``metadata.labels`` (label
selectors run in the store); labels must therefore never hold secret values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from flotilla.resources import kinds
from flotilla.resources.labels import Selector
from flotilla.store.base import (
    Change,
    Fence,
    Lease,
    ListResult,
    Modifying,
    Object,
    Store,
    WatchEvent,
)
from flotilla.store.envelope import DecryptionError, Envelope

log = logging.getLogger(__name__)

#: the field of a stored object that holds the sealed body
SEALED = "encrypted"
#: the store's names of the kinds sealed: Secrets always, Works when they carry one
SECRETS = kinds.by_kind("Secret").resource
WORKS = kinds.by_kind("Work").resource


def _carries_secret(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("kind") == "Secret":
            return True
        return any(_carries_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_carries_secret(v) for v in value)
    return False


SEALABLE = frozenset({SECRETS, WORKS})


def needs_sealing(resource: str, obj: Object) -> bool:
    """Secrets, and any Work whose manifests include a Secret. A Work that arrives with
    a field of the envelope's name is sealed too, so that every stored object of these
    resources that has the field is one this module wrote, and no client can make an
    object unreadable by adding it."""
    return resource == SECRETS or (resource == WORKS and (
        SEALED in obj or _carries_secret(obj.get("spec"))))


def storage_key(resource: str, obj: Object) -> str:
    meta = obj.get("metadata") or {}
    return f"{resource}/{meta.get('namespace', '')}/{meta.get('name', '')}"


class EncryptedStore:
    """A `Store` that seals what `needs_sealing` says before ``inner`` stores it."""

    def __init__(self, inner: Store, envelope: Envelope) -> None:
        self.inner = inner
        self.envelope = envelope
        self._modifying = inner if isinstance(inner, Modifying) else None

    # -- the transformation ------------------------------------------------------------
    def seal(self, resource: str, obj: Object) -> Object:
        if not needs_sealing(resource, obj):
            return obj
        meta = dict(obj.get("metadata") or {})
        meta.pop("resourceVersion", None)
        body = json.dumps({**obj, "metadata": meta}, separators=(",", ":"), sort_keys=True)
        clear = {k: meta[k] for k in ("namespace", "name", "labels") if k in meta}
        out: Object = {"metadata": clear,
                       SEALED: self.envelope.seal(body.encode(), storage_key(resource, obj))}
        for field in ("apiVersion", "kind"):
            if field in obj:
                out[field] = obj[field]
        return out

    def open(self, resource: str, stored: Object) -> Object:
        sealed = stored.get(SEALED)
        if sealed is None or resource not in SEALABLE:
            return stored
        where = storage_key(resource, stored)
        if not isinstance(sealed, str):
            raise DecryptionError(f"{where}: the encrypted field is not text")
        try:
            obj: Object = json.loads(self.envelope.open(sealed, where))
        except ValueError as exc:  # JSON: only a key-holder could have written it
            raise DecryptionError(f"{where}: decrypted value is not an object: {exc}") from None
        revision = (stored.get("metadata") or {}).get("resourceVersion")
        if revision is not None:
            obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": revision}
        return obj

    @staticmethod
    def _returned(sent: Object, plain: Object, stored: Object) -> Object:
        """What a write returns: the plaintext with the revision the backend gave it."""
        if sent is plain:
            return stored
        revision = stored["metadata"]["resourceVersion"]
        return {**plain, "metadata": {**plain.get("metadata", {}),
                                      "resourceVersion": revision}}

    # -- Store -------------------------------------------------------------------------
    async def get(self, resource: str, namespace: str, name: str) -> Object:
        return self.open(resource, await self.inner.get(resource, namespace, name))

    async def list(self, resource: str, namespace: str | None = None, *,
                   selector: Selector | None = None, limit: int = 0,
                   continue_token: str | None = None) -> ListResult:
        page = await self.inner.list(resource, namespace, selector=selector, limit=limit,
                                     continue_token=continue_token)
        page.items = [self.open(resource, item) for item in page.items]
        return page

    async def create(self, resource: str, obj: Object, *,
                     lease_id: int | None = None, fence: Fence | None = None) -> Object:
        sent = self.seal(resource, obj)
        stored = await self.inner.create(resource, sent, lease_id=lease_id, fence=fence)
        return self._returned(sent, obj, stored)

    async def update(self, resource: str, obj: Object, *,
                     expected_revision: int | None = None,
                     fence: Fence | None = None) -> Object:
        sent = self.seal(resource, obj)
        stored = await self.inner.update(resource, sent, expected_revision=expected_revision,
                                         fence=fence)
        return self._returned(sent, obj, stored)

    async def modify(self, resource: str, namespace: str, name: str, change: Change, *,
                     expected_revision: int) -> Object | None:
        """`Modifying.modify` for what is stored in clear; sealed kinds (and an inner
        store without it) decline, so the caller takes the get + update path."""
        if resource in SEALABLE or self._modifying is None:
            return None
        return await self._modifying.modify(resource, namespace, name, change,
                                       expected_revision=expected_revision)

    async def delete(self, resource: str, namespace: str, name: str, *,
                     expected_revision: int | None = None,
                     fence: Fence | None = None) -> Object:
        stored = await self.inner.delete(resource, namespace, name,
                                         expected_revision=expected_revision, fence=fence)
        try:
            return self.open(resource, stored)
        except DecryptionError as exc:
            # It is gone either way; an object nobody can read must still be deletable.
            log.warning("deleted %s", exc)
            return {k: v for k, v in stored.items() if k != SEALED}

    def watch(self, resource: str | None = None, namespace: str | None = None, *,
              since: int) -> AsyncIterator[WatchEvent]:
        return self._watch(self.inner.watch(resource, namespace, since=since))

    async def _watch(self, events: AsyncIterator[WatchEvent]) -> AsyncIterator[WatchEvent]:
        try:
            async for event in events:
                if SEALED in event.object:
                    try:
                        opened = self.open(event.resource, event.object)
                    except DecryptionError as exc:
                        # One unreadable object must not end every watch of the store;
                        # a get or list of it reports the error to whoever asks.
                        log.error("watch skips %s event at revision %d: %s", event.type,
                                  event.revision, exc)
                        continue
                    event = WatchEvent(event.type, event.resource, opened, event.revision)
                yield event
        finally:  # a consumer that stops watching ends the backend's watch too
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def grant_lease(self, ttl: float) -> Lease:
        return await self.inner.grant_lease(ttl)

    async def keepalive(self, lease_id: int) -> Lease:
        return await self.inner.keepalive(lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        await self.inner.revoke_lease(lease_id)

    async def lease_info(self, lease_id: int) -> Lease:
        return await self.inner.lease_info(lease_id)

    async def close(self) -> None:
        await self.inner.close()
