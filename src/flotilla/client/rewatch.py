"""`follow`: one watch that outlives the server's streams.

The server ends every watch after a while (`flotilla.api.fairness`: a random time in
``[min, 2·min)``) and on restart; a reader that wants "every change from now on" (the
CLI's ``get --watch``) watches again from the last resourceVersion it saw, BOOKMARKs
included, so the seam between two streams loses and repeats nothing. The informer does
the same with its own cache and back-off; this is the shape for a caller without one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from flotilla.client.backoff import Backoff
from flotilla.client.base import ResourceClient, WatchEvent
from flotilla.resources.kinds import Kind


async def follow(client: ResourceClient, kind: Kind, namespace: str | None = None, *,
                 resource_version: str, selector: str | None = None,
                 backoff: Backoff | None = None) -> AsyncIterator[WatchEvent]:
    """Every event after ``resource_version``, across any number of streams.

    A stream that ends without an error is watched again from the last version seen
    (a stream that ends at once and empty waits a back-off first, so a server that is
    stopping is not hammered). Errors are raised: a 410 means the caller must list
    again; a broken connection is the caller's to report or retry.
    """
    rv = resource_version
    pause = backoff or Backoff(0.05, 5.0)
    while True:
        seen = False
        async for event in client.watch(kind, namespace, resource_version=rv,
                                        selector=selector):
            seen = True
            rv = str((event.object.get("metadata") or {}).get("resourceVersion") or rv)
            yield event
        if seen:
            pause.reset()
        else:
            await pause.wait()
