"""Kubernetes-style resource semantics over a `Store`, and the in-process `ResourceClient`.

The store only knows revisions and compare-and-set; everything a Kubernetes user expects
on top of that lives here, in one place, so the HTTP server and the controllers running
inside the server process get exactly the same behaviour:

* create: validation, the ``default`` namespace, server fields (uid, creationTimestamp,
  generation 1); ``status`` is dropped for kinds with a status sub-resource, because only
  controllers own it;
* update: ``generation`` moves only when the desired state changes, ``status`` is carried
  over from the stored object, server metadata is preserved; a ``resourceVersion`` in the
  object makes it a compare-and-set;
* update_status: only ``status`` changes;
* delete: with finalizers the object is only marked (``deletionTimestamp``) and goes away
  when an update removes the last finalizer.

Every read-modify-write is a compare-and-set against the revision just read, so a spec
update and a concurrent status update can never overwrite each other; when the caller
gave no ``resourceVersion`` the registry retries a bounded number of times instead.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from flotilla.api import errors
from flotilla.api.renewal import renewal
from flotilla.api.watch import WatchSet, watch_events
from flotilla.client.base import ConflictError, NotFoundError, ObjectList, WatchEvent
from flotilla.resources import kinds
from flotilla.resources.kinds import Kind
from flotilla.resources.labels import SelectorError, parse_selector
from flotilla.resources.validation import FieldError, InvalidObject, validate_object
from flotilla.store import base as store_base
from flotilla.store.base import Modifying, Object, Store

#: Lease updates that only renew take `flotilla.api.renewal`'s fast path.
_LEASE = kinds.by_kind("Lease")
#: Read-modify-write attempts before an unconditional update gives up with 409.
_MAX_ATTEMPTS = 8
#: Metadata the server owns: a client cannot set or change them through create/update.
_SERVER_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
#: Top-level fields that are not desired state (everything else is: spec, data, ...).
_NOT_DESIRED_STATE = frozenset({"apiVersion", "kind", "metadata", "status"})


#: Called with (stored object or None, object about to be written) inside the
#: compare-and-set loop, so what it adds (managedFields) is computed against exactly the
#: revision the write replaces.
BeforeWrite = Callable[[Object | None, Object], None]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired_state(obj: Object) -> dict[str, Any]:
    """What a change of bumps ``generation``: ``spec``, and for spec-less Kubernetes
    kinds (ConfigMap, Secret) their payload fields such as ``data``."""
    return {k: v for k, v in obj.items() if k not in _NOT_DESIRED_STATE}


def describe(kind: Kind, namespace: str, name: str) -> str:
    """How errors name an object: ``deployments.apps "web" in namespace "shop"``."""
    where = f' in namespace "{namespace}"' if namespace else ""
    return f'{kind.resource} "{name}"{where}'


def parse_resource_version(value: object, field: str = "metadata.resourceVersion") -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise errors.invalid(
        f"invalid resourceVersion {value!r}",
        [FieldError(field, "must be a non-negative integer string")],
    )


class Registry:
    """The resource layer of the API server; implements `ResourceClient` in-process."""

    def __init__(
        self, store: Store, *, validate: Callable[[Object], Kind] = validate_object
    ) -> None:
        self._store = store
        #: checked once: an isinstance against a runtime Protocol costs microseconds
        #: per call, and every heartbeat asks
        self._modifying = store if isinstance(store, Modifying) else None
        self._validate_fn = validate
        self._checks: list[Callable[[Object], None]] = []
        #: Open bookmarking (HTTP) watches; `close_watches` ends them at shutdown.
        self.watches = WatchSet()

    @property
    def store(self) -> Store:
        return self._store

    # -- helpers ---------------------------------------------------------------------

    def add_check(self, check: Callable[[Object], None]) -> None:
        """Also run ``check`` on every object that passed the schema; it raises
        `InvalidObject` to refuse it. For rules that need the server's own settings
        (the failover budget against the configured grace period)."""
        self._checks.append(check)

    def _validate(self, obj: Object) -> Kind:
        try:
            kind = self._validate_fn(obj)
            for check in self._checks:
                check(obj)
            return kind
        except kinds.UnknownKind as exc:
            raise errors.BadRequestError(str(exc).strip("'\"")) from None
        except InvalidObject as exc:
            meta = obj.get("metadata")
            name = meta.get("name", "") if isinstance(meta, dict) else ""
            raise errors.invalid(
                f"{obj.get('kind', 'object')} {name!r} is invalid: {exc}",
                exc.errors, kind=str(obj.get("kind", "")), name=str(name),
            ) from None

    @staticmethod
    def kind_of(obj: Object) -> Kind:
        """The Kind an incoming object claims, or a 400 naming what is wrong."""
        if not isinstance(obj, dict):
            raise errors.BadRequestError("the body must be a single object (a mapping)")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(kind, str) or not kind:
            raise errors.invalid("kind is required", [FieldError("kind", "required")])
        if not isinstance(api_version, str) or not api_version:
            raise errors.invalid(
                "apiVersion is required", [FieldError("apiVersion", "required")]
            )
        try:
            return kinds.for_api_version(api_version, kind)
        except kinds.UnknownKind as exc:
            raise errors.BadRequestError(str(exc).strip("'\"")) from None

    @staticmethod
    def _key(kind: Kind, obj: Object) -> tuple[str, str]:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise errors.invalid("metadata is required", [FieldError("metadata", "required")])
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise errors.invalid(
                f"{kind.kind}: metadata.name is required",
                [FieldError("metadata.name", "required")], kind=kind.kind,
            )
        if kind.namespaced:
            ns = meta.get("namespace") or "default"
            if not isinstance(ns, str):
                raise errors.invalid(
                    "metadata.namespace must be a string",
                    [FieldError("metadata.namespace", "must be a string")],
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
            ns = ""
        return ns, name

    async def _get(self, kind: Kind, namespace: str, name: str) -> Object:
        try:
            return await self._store.get(kind.resource, namespace, name)
        except store_base.StoreError as exc:
            raise errors.from_store(exc, describe(kind, namespace, name)) from None

    @staticmethod
    def _check_cas(kind: Kind, current: Object, expected: int | None, what: str) -> int:
        revision = int(current["metadata"]["resourceVersion"])
        if expected is not None and expected != revision:
            raise ConflictError(
                f"operation on {what} failed: the object has been modified "
                f"(resourceVersion {expected} given, {revision} stored); "
                "read the latest version and try again",
                {"kind": kind.kind, "name": current["metadata"].get("name", "")},
            )
        return revision

    # -- ResourceClient ---------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str, name: str) -> Object:
        return await self._get(kind, namespace if kind.namespaced else "", name)

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ObjectList:
        try:
            compiled = parse_selector(selector)
        except SelectorError as exc:
            raise errors.BadRequestError(f"labelSelector: {exc}") from None
        if limit < 0:
            raise errors.BadRequestError("limit must not be negative")
        try:
            result = await self._store.list(
                kind.resource,
                namespace if kind.namespaced else None,
                selector=compiled,
                limit=limit,
                continue_token=continue_token,
            )
        except store_base.StoreError as exc:
            raise errors.from_store(exc, kind.resource) from None
        except ValueError as exc:
            raise errors.BadRequestError(f"invalid continue token: {exc}") from None
        return ObjectList(result.items, str(result.revision), result.continue_token)

    async def create(self, obj: Object, *, before_write: BeforeWrite | None = None,
                     dry_run: bool = False) -> Object:
        obj = copy.deepcopy(obj)
        kind = self.kind_of(obj)
        namespace, name = self._key(kind, obj)
        meta = obj["metadata"]
        meta.pop("resourceVersion", None)
        for field in _SERVER_METADATA:
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if kind.has_status:
            obj.pop("status", None)
        if before_write is not None:
            before_write(None, obj)
        self._validate(obj)
        if dry_run:
            return obj
        try:
            return await self._store.create(kind.resource, obj)
        except store_base.StoreError as exc:
            raise errors.from_store(exc, describe(kind, namespace, name)) from None

    async def update(self, obj: Object, *, before_write: BeforeWrite | None = None,
                     dry_run: bool = False) -> Object:
        kind = self.kind_of(obj)
        incoming = copy.deepcopy(obj)
        namespace, name = self._key(kind, incoming)
        what = describe(kind, namespace, name)
        rv = incoming["metadata"].get("resourceVersion")
        expected = None if rv in (None, "") else parse_resource_version(rv)
        # A pure renewal keeps its one-step fast path; its managedFields are not touched.
        if kind is _LEASE and expected is not None and self._modifying is not None \
                and not dry_run:
            try:
                renewed = await self._modifying.modify(kind.resource, namespace, name,
                                                   renewal(incoming),
                                                   expected_revision=expected)
            except store_base.StoreError as exc:
                raise errors.from_store(exc, what) from None
            if renewed is not None:
                return renewed  # else not a pure renewal: the general path below
        for _ in range(_MAX_ATTEMPTS):
            current = await self._get(kind, namespace, name)
            revision = self._check_cas(kind, current, expected, what)
            new = self._merge_update(kind, current, incoming)
            if before_write is not None:
                before_write(current, new)
            self._validate(new)
            if dry_run:
                return {**new, "metadata": {**new["metadata"], "resourceVersion": str(revision)}}
            try:
                if new["metadata"].get("deletionTimestamp") and not new["metadata"].get(
                    "finalizers"
                ):
                    return await self._store.delete(
                        kind.resource, namespace, name, expected_revision=revision
                    )
                return await self._store.update(kind.resource, new, expected_revision=revision)
            except store_base.Conflict as exc:
                if expected is not None:
                    raise errors.from_store(exc, what) from None
            except store_base.StoreError as exc:
                raise errors.from_store(exc, what) from None
        raise ConflictError(f"operation on {what} failed: too many concurrent writers; retry")

    @staticmethod
    def _merge_update(kind: Kind, current: Object, incoming: Object) -> Object:
        new = copy.deepcopy(incoming)
        meta, old_meta = new["metadata"], current["metadata"]
        for field in _SERVER_METADATA:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("resourceVersion", None)
        if kind.has_status:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        generation = int(old_meta.get("generation", 1))
        if desired_state(new) != desired_state(current):
            generation += 1
        meta["generation"] = generation
        return new

    async def update_status(self, obj: Object) -> Object:
        kind = self.kind_of(obj)
        incoming = copy.deepcopy(obj)
        namespace, name = self._key(kind, incoming)
        what = describe(kind, namespace, name)
        if not kind.has_status:
            raise NotFoundError(f"{kind.resource} has no status sub-resource")
        rv = incoming["metadata"].get("resourceVersion")
        expected = None if rv in (None, "") else parse_resource_version(rv)
        for _ in range(_MAX_ATTEMPTS):
            current = await self._get(kind, namespace, name)
            revision = self._check_cas(kind, current, expected, what)
            new = copy.deepcopy(current)
            new["metadata"].pop("resourceVersion", None)
            if incoming.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = incoming["status"]
            self._validate(new)
            try:
                return await self._store.update(kind.resource, new, expected_revision=revision)
            except store_base.Conflict as exc:
                if expected is not None:
                    raise errors.from_store(exc, what) from None
            except store_base.StoreError as exc:
                raise errors.from_store(exc, what) from None
        raise ConflictError(f"operation on {what} failed: too many concurrent writers; retry")

    async def delete(
        self, kind: Kind, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Object | None:
        namespace = namespace if kind.namespaced else ""
        what = describe(kind, namespace, name)
        expected = None if not resource_version else parse_resource_version(resource_version)
        for _ in range(_MAX_ATTEMPTS):
            current = await self._get(kind, namespace, name)
            revision = self._check_cas(kind, current, expected, what)
            meta = current["metadata"]
            try:
                if not meta.get("finalizers"):
                    return await self._store.delete(
                        kind.resource, namespace, name, expected_revision=revision
                    )
                if meta.get("deletionTimestamp"):
                    return current
                marked = copy.deepcopy(current)
                marked["metadata"]["deletionTimestamp"] = _now()
                marked["metadata"].pop("resourceVersion", None)
                return await self._store.update(kind.resource, marked, expected_revision=revision)
            except store_base.Conflict as exc:
                if expected is not None:
                    raise errors.from_store(exc, what) from None
            except store_base.StoreError as exc:
                raise errors.from_store(exc, what) from None
        raise ConflictError(f"operation on {what} failed: too many concurrent writers; retry")

    def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str,
        selector: str | None = None,
        bookmark_interval: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after ``resource_version``; with ``bookmark_interval`` also BOOKMARK
        events when idle (see `flotilla.api.watch`)."""
        since = parse_resource_version(resource_version, "resourceVersion")
        try:
            compiled = parse_selector(selector)
        except SelectorError as exc:
            raise errors.BadRequestError(f"labelSelector: {exc}") from None
        return watch_events(
            self._store,
            kind,
            namespace if kind.namespaced else None,
            since=since,
            selector=compiled,
            bookmark_interval=bookmark_interval,
            watches=self.watches,
        )

    def close_watches(self) -> None:
        self.watches.close_all()

    async def ready(self) -> int:
        """The store's revision, after a real read proves it is open and answering
        (for /readyz: a revision alone may be a cached number)."""
        try:
            with contextlib.suppress(store_base.NotFound):
                await self._store.get("readyz.flotilla.io", "", "probe")
            return await self._store.current_revision()
        except store_base.StoreError as exc:
            raise errors.from_store(exc, "store") from None

