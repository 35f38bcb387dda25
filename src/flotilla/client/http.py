"""`HttpClient`: the `ResourceClient` seam over HTTP, and `apply` (create-or-update).

Error answers (JSON ``Status`` objects) are mapped back to the same `ApiError`
subclasses the in-process registry raises, so code written against the seam handles
errors identically whichever side of the network it runs on. Network failures become
`UnreachableError` (also an `ApiError`), so a caller has one exception family to catch;
a certificate that does not verify becomes its `TlsError` subclass, whose message names
the certificate problem and the CA used.

An ``https://`` server is verified against ``ca`` (else ``$FLOTILLA_CA_FILE``, else the
system's roots) with the process-wide context of `flotilla.pki.verifying_context`, and
one client keeps its connections alive: no handshake per call.

Several servers (replicas of one control plane on one etcd) may be given; the client
sticks to one and moves to the next when it fails, retrying the request there only when
that is safe -- `flotilla.client.failover` holds the rules and the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from flotilla.client.base import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    Object,
    ObjectList,
    ResourceClient,
    WatchEvent,
)
from flotilla.client.failover import (
    DEFAULT_HOLD_DOWN,
    Attempt,
    Failback,
    response_outcome,
    transport_outcome,
)
from flotilla.client.failover import Kind as AttemptKind
from flotilla.client.servers import parse_servers
from flotilla.pki import ca_file_from_env, verifying_context
from flotilla.resources import kinds
from flotilla.resources.kinds import Kind

log = logging.getLogger(__name__)

ApplyResult = Literal["created", "configured", "unchanged"]
#: Fields that are not compared by `apply` (server-owned, or written by controllers).
_NOT_COMPARED = frozenset({"apiVersion", "kind", "metadata", "status"})


class UnreachableError(ApiError):
    """The server could not be reached, or the connection broke mid-answer."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "ServiceUnavailable", message)


class TlsError(UnreachableError):
    """The server's certificate did not verify against the CA (or spoke no TLS)."""


def tls_problem(exc: BaseException) -> str | None:
    """The certificate problem behind a connection error, in one line, or None when the
    failure was not about TLS (refused, timed out...)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            reason = seen.reason or str(seen)
            return f"TLS handshake failed: {reason}"
        seen = seen.__cause__ or seen.__context__
    return None


def verify_for(server: str, ca: Path | None) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` gets for ``server``: the shared verifying context for an
    https URL (``ca``, else ``$FLOTILLA_CA_FILE``, else the system's roots)."""
    if not server.startswith("https://"):
        return True  # unused by httpx for http:// URLs
    return verifying_context(ca or ca_file_from_env())


def _transport_error(server: str, ca: Path | None, exc: httpx.TransportError,
                     doing: str) -> UnreachableError:
    problem = tls_problem(exc)
    if problem is not None:
        trusted = ca or ca_file_from_env()
        against = (f"against the CA {trusted}" if trusted else
                   "against the system's CAs (no --ca-file / FLOTILLA_CA_FILE given)")
        return TlsError(f"TLS to the Flotilla server at {server} failed, verified {against}: "
                        f"{problem}")
    return UnreachableError(f"{doing}: {exc or type(exc).__name__}")


def error_from_status(status: Any, code: int | None = None) -> ApiError:
    """The `ApiError` subclass for a ``Status`` object (or whatever the server sent)."""
    if not isinstance(status, dict):
        return ApiError(code or 500, "Unknown", str(status)[:500])
    code = int(status.get("code") or code or 500)
    reason = str(status.get("reason") or "Unknown")
    message = str(status.get("message") or reason)
    details = status.get("details") if isinstance(status.get("details"), dict) else None
    if code == 404:
        return NotFoundError(message, details)
    if code == 409:
        if reason == "AlreadyExists":
            return AlreadyExistsError(message, details)
        return ConflictError(message, details)
    if code == 410:
        return GoneError(message, details)
    if code == 422:
        return InvalidError(message, details)
    return ApiError(code, reason, message, details)


def _error_from_response(response: httpx.Response) -> ApiError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or response.reason_phrase
    return error_from_status(body, response.status_code)


def _paths(kind: Kind, namespace: str | None, api_version: str | None = None) -> str:
    gv = api_version if api_version in kind.api_versions else kind.api_version
    root = f"/apis/{gv}" if "/" in gv else f"/api/{gv}"
    if kind.namespaced and namespace:
        return f"{root}/namespaces/{namespace}/{kind.plural}"
    return f"{root}/{kind.plural}"


def _kind_of(obj: Object) -> Kind:
    try:
        return kinds.for_api_version(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    except kinds.UnknownKind as exc:
        raise ApiError(400, "BadRequest", str(exc).strip("'\"")) from None


def _object_path(obj: Object, suffix: str = "") -> str:
    kind = _kind_of(obj)
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise InvalidError(f"{kind.kind}: metadata.name is required",
                           {"causes": [{"field": "metadata.name", "message": "required"}]})
    namespace = (meta.get("namespace") or "default") if kind.namespaced else ""
    return f"{_paths(kind, namespace, obj.get('apiVersion'))}/{name}{suffix}"


#: Longest ``Retry-After`` a 429 is waited out for; beyond it the 429 is the answer.
MAX_RETRY_AFTER = 10.0


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 asks to wait (its ``Retry-After`` header, whole seconds), or None
    when it names none or too long a wait to sit out."""
    value = response.headers.get("retry-after", "")
    if not value.isdigit() or float(value) > MAX_RETRY_AFTER:
        return None
    return float(value)


class HttpClient(ResourceClient):
    """A `ResourceClient` talking to a Flotilla server with a bearer token.

    A 429 (over the caller's rate limit, `flotilla.api.fairness`) is retried after its
    ``Retry-After`` up to ``rate_limit_retries`` times, as client-go does: the request
    was refused before it did anything, so any verb may be sent again.

    ``server`` may name several servers (``"URL,URL"`` or a sequence, parsed by
    `flotilla.client.servers.parse_servers`): one token and one CA serve them all (they
    are one control plane). The client sticks to the current one; a failure that
    `flotilla.client.failover` says is the server's (refused, timed out, 503) moves it
    to the next, logged once with both URLs, and the request is sent there when it is
    safe to repeat. Each request tries every server at most once. Once away from the
    first (preferred) server, it returns there after ``failback_after`` seconds when
    that server is ready again (`flotilla.client.failover.Failback`).
    """

    def __init__(
        self,
        server: str | Sequence[str],
        token: str | None,
        *,
        timeout: float = 10.0,
        watch_idle_timeout: float = 60.0,
        ca: Path | None = None,
        rate_limit_retries: int = 3,
        failback_after: float | None = DEFAULT_HOLD_DOWN,
    ) -> None:
        """``watch_idle_timeout`` bounds the silence on a watch (the server sends a
        BOOKMARK every few seconds), so a dead connection is noticed. ``ca``: the CA
        file an https server is verified against (a `CaFileError` when unusable).
        ``failback_after``: the hold-down before returning to the first server (None:
        stay where a failover left the client)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.servers = parse_servers(server if isinstance(server, str) else list(server))
        self.ca = ca
        self._timeout = timeout
        self.rate_limit_retries = rate_limit_retries
        self._watch_timeout = httpx.Timeout(timeout, read=watch_idle_timeout)
        self._current = 0
        self._failback = Failback(failback_after if len(self.servers) > 1 else None)
        self._look: asyncio.Task[None] | None = None
        self._https = [httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout,
                                         verify=verify_for(url, ca))
                       for url in self.servers]

    @property
    def server(self) -> str:
        """The server requests go to now."""
        return self.servers[self._current]

    @property
    def _http(self) -> httpx.AsyncClient:
        """The current server's pool (bench/heartbeat_bench.py replaces it)."""
        return self._https[self._current]

    @_http.setter
    def _http(self, http: httpx.AsyncClient) -> None:
        self._https[self._current] = http

    def _switch(self, index: int, why: str) -> None:
        """Move from server ``index`` to the next -- unless another request already
        moved on from it (many requests fail together; the switch is logged once)."""
        if len(self.servers) < 2 or index != self._current:
            return
        self._current = (index + 1) % len(self.servers)
        log.warning("API server %s failed (%s); switching to %s", self.servers[index], why,
                    self.servers[self._current])
        if self._current != 0:
            self._failback.left_preferred()

    def _maybe_fail_back(self) -> None:
        """Away from the preferred server past the hold-down: look at it, in the
        background (no request waits for the look)."""
        if self._current == 0 or self._look is not None or not self._failback.take_look():
            return
        self._look = asyncio.get_running_loop().create_task(self._look_at_preferred())

    async def _look_at_preferred(self) -> None:
        try:
            try:
                ready = (await self._https[0].get("/readyz", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and self._current != 0:
                log.warning("API server %s is ready again; returning to it from %s",
                            self.servers[0], self.servers[self._current])
                self._current = 0
                self._failback.returned()
        finally:
            self._look = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._look is not None:
            self._look.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._look
        for http in self._https:
            await http.aclose()

    async def _send(
        self, index: int, method: str, path: str, *, body: Object | None,
        params: dict[str, str] | None, headers: dict[str, str] | None,
    ) -> httpx.Response:
        """One request to server ``index``, with its 429s waited out."""
        http = self._https[index]
        for attempt in range(self.rate_limit_retries + 1):
            response = await http.request(method, path, json=body, params=params,
                                          headers=headers)
            wait = retry_after(response) if response.status_code == 429 else None
            if wait is None or attempt == self.rate_limit_retries:
                break
            # A little jitter: callers refused together do not all come back together.
            await asyncio.sleep(wait * (1 + 0.2 * random.random()))
        return response

    async def _call(
        self, method: str, path: str, *, body: Object | None = None,
        params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
        attempt: Attempt | None = None,
    ) -> Any:
        """Send the request, failing over by `flotilla.client.failover`'s rules;
        ``attempt`` says whether it may be repeated after an ambiguous failure (default:
        reads may, writes may not)."""
        attempt = attempt or Attempt.for_method(method, params)
        self._maybe_fail_back()
        for tried in range(len(self.servers)):
            index = self._current
            server = self.servers[index]
            last = tried == len(self.servers) - 1
            try:
                response = await self._send(index, method, path, body=body, params=params,
                                            headers=headers)
            except httpx.TransportError as exc:
                error = _transport_error(server, self.ca, exc,
                                         f"cannot reach the Flotilla server at {server}")
                outcome = transport_outcome(exc, is_tls=isinstance(error, TlsError))
                if outcome.switch:
                    self._switch(index, outcome.why)
                if last or not attempt.may_repeat(outcome):
                    raise error from exc
                attempt.note(outcome)
                continue
            if response.status_code == 503:
                outcome = response_outcome(response)
                self._switch(index, outcome.why)
                if not last and attempt.may_repeat(outcome):
                    attempt.note(outcome)
                    continue
            if response.status_code >= 400:
                raise _error_from_response(response)
            return response.json()
        raise AssertionError("unreachable: the last server's answer is returned")

    async def review_access(self, authorization: str, attributes: Object) -> tuple[bool, str]:
        """Ask the server whether the holder of ``authorization`` (someone else's
        ``Bearer ...`` header) may do ``attributes`` (a SelfSubjectAccessReview's
        resourceAttributes); (allowed, reason). A 401 is (False, why)."""
        try:
            result = await self._call(
                "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                body={"apiVersion": "authorization.k8s.io/v1",
                      "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": attributes}},
                headers={"Authorization": authorization},
                attempt=Attempt(AttemptKind.READ))  # a question: safe to ask again
        except ApiError as exc:
            if exc.status == 401:
                return False, exc.message
            raise
        status = result.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    async def get(self, kind: Kind, namespace: str, name: str) -> Object:
        result: Object = await self._call("GET", f"{_paths(kind, namespace)}/{name}")
        return result

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ObjectList:
        params: dict[str, str] = {}
        if selector:
            params["labelSelector"] = selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        body = await self._call("GET", _paths(kind, namespace), params=params)
        meta = body.get("metadata") or {}
        return ObjectList(list(body.get("items") or []), str(meta.get("resourceVersion", "")),
                          meta.get("continue") or None)

    async def create(self, obj: Object) -> Object:
        kind = _kind_of(obj)
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        path = _paths(kind, namespace if kind.namespaced else None, obj.get("apiVersion"))
        attempt = Attempt(AttemptKind.CREATE)
        try:
            result: Object = await self._call("POST", path, body=obj, attempt=attempt)
        except AlreadyExistsError:
            if not attempt.maybe_done:
                raise
            # Our first try may have landed (`flotilla.client.failover`): ours only if
            # the stored object is what we sent.
            meta = obj.get("metadata") or {}
            stored = await self.get(kind, (meta.get("namespace") or "default")
                                    if kind.namespaced else "", str(meta.get("name")))
            if _comparable(stored) != _comparable(obj):
                raise
            log.warning("create of %s %s was repeated on %s after an unknown outcome; "
                        "the stored object is the one sent, taken as created", kind.kind,
                        meta.get("name"), self.server)
            return stored
        return result

    async def update(self, obj: Object) -> Object:
        result: Object = await self._call("PUT", _object_path(obj), body=obj,
                                          attempt=_put_attempt(obj))
        return result

    async def update_status(self, obj: Object) -> Object:
        result: Object = await self._call("PUT", _object_path(obj, "/status"), body=obj,
                                          attempt=_put_attempt(obj))
        return result

    async def delete(
        self, kind: Kind, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Object | None:
        params = {"resourceVersion": resource_version} if resource_version else None
        result: Object | None = await self._call(
            "DELETE", f"{_paths(kind, namespace)}/{name}", params=params
        )
        return result

    async def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str,
        selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Stream events after ``resource_version`` over one long-lived response.

        An empty ``resource_version`` starts with an ADDED event per existing object.
        The stream ends normally when the server shuts down; a broken connection
        raises `UnreachableError`. Either way, resume from the last resourceVersion
        seen (BOOKMARKs included) to lose and repeat nothing.
        """
        # Bookmarks keep a quiet watch both alive (`watch_idle_timeout`) and current.
        params = {"watch": "1", "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if selector:
            params["labelSelector"] = selector
        path = _paths(kind, namespace)
        # Until the first event, a failing server is simply replaced by the next one
        # (each tried once); after it, the caller resumes from its last resourceVersion,
        # and its next watch goes to the server this one switched to. A stream on a
        # server the client has left (it failed back to the preferred one) ends after
        # the event it just delivered, and the caller resumes it there the same way.
        self._maybe_fail_back()
        for tried in range(len(self.servers)):
            index = self._current
            server = self.servers[index]
            last = tried == len(self.servers) - 1
            started = False
            try:
                async with self._https[index].stream(
                    "GET", path, params=params, timeout=self._watch_timeout
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code == 503:
                            self._switch(index, response_outcome(response).why)
                            if not last:
                                continue
                        raise _error_from_response(response)
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            raise error_from_status(event.get("object"))
                        started = True
                        yield WatchEvent(event["type"], event["object"])
                        self._maybe_fail_back()
                        if self._current != index:
                            return
                return
            except httpx.TransportError as exc:
                error = _transport_error(server, self.ca, exc,
                                         f"watch of {kind.plural} on {server} broke")
                outcome = transport_outcome(exc, is_tls=isinstance(error, TlsError))
                if outcome.switch:
                    self._switch(index, outcome.why)
                if started or last or not outcome.switch:
                    raise error from exc


def _put_attempt(obj: Object) -> Attempt:
    """A PUT carrying resourceVersion is compare-and-set, safe to repeat."""
    if (obj.get("metadata") or {}).get("resourceVersion"):
        return Attempt(AttemptKind.CAS)
    return Attempt(AttemptKind.WRITE)


#: Annotations the server writes itself; their difference is not a user's change.
_SERVER_ANNOTATIONS = frozenset({"flotilla.io/changed-by"})


def _comparable(obj: Object) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    rest = {k: v for k, v in obj.items() if k not in _NOT_COMPARED}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in _SERVER_ANNOTATIONS}
    return (obj.get("apiVersion"), rest, meta.get("labels") or {}, annotations)


async def apply(client: ResourceClient, obj: Object, *, attempts: int = 5) -> tuple[
    ApplyResult, Object
]:
    """Create ``obj``, or update it when its spec (data, ...), labels or annotations
    differ from the stored object; ``unchanged`` otherwise (what `flotilla apply` prints).

    The update is a compare-and-set on the version just read, retried on a conflict, so
    a concurrent writer is never silently overwritten with a stale comparison.
    """
    kind = _kind_of(obj)
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    namespace = (meta.get("namespace") or "default") if kind.namespaced else ""
    last: ApiError | None = None
    for _ in range(attempts):
        try:
            current = await client.get(kind, namespace, name)
        except NotFoundError:
            try:
                return "created", await client.create(obj)
            except AlreadyExistsError as exc:
                last = exc
                continue
        if _comparable(current) == _comparable(obj):
            return "unchanged", current
        desired = copy.deepcopy(obj)
        desired.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
            "resourceVersion"]
        try:
            return "configured", await client.update(desired)
        except ConflictError as exc:
            last = exc
    assert last is not None
    raise last
