"""Read-modify-write with compare-and-set, retried on conflict.

Several writers share some objects (the agent and the cluster-health controller both
write a Cluster's status). Each one reads the current object, changes only the fields it
owns, and writes back with the resourceVersion it read; a conflict means somebody else
won the race, so read again and re-apply the change. This is the Kubernetes way, and it
never loses the other writer's fields.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from flotilla.client.base import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    Object,
    ResourceClient,
)
from flotilla.resources.kinds import Kind

#: A mutation edits the object in place and says whether it changed anything.
Mutation = Callable[[Object], bool]


async def mutate(
    client: ResourceClient,
    kind: Kind,
    namespace: str,
    name: str,
    change: Mutation,
    *,
    status: bool = False,
    create: Callable[[], Object] | None = None,
    attempts: int = 10,
) -> Object | None:
    """Apply ``change`` to the object and write it back; returns the stored object.

    With ``status=True`` the write goes to the ``/status`` sub-resource. When the object
    does not exist, ``create()`` (if given) builds it; otherwise None is returned. When
    ``change`` reports no change, nothing is written.
    """
    for _ in range(attempts):
        try:
            current = await client.get(kind, namespace, name)
        except NotFoundError:
            if create is None:
                return None
            fresh = create()
            try:
                stored = await client.create(fresh)
            except AlreadyExistsError:
                continue  # created concurrently: mutate that one
            if status and "status" in fresh:
                stored["status"] = copy.deepcopy(fresh["status"])
                change(stored)
                return await client.update_status(stored)
            return stored
        obj = copy.deepcopy(current)
        if not change(obj):
            return current
        try:
            return await (client.update_status(obj) if status else client.update(obj))
        except ConflictError:
            continue
    raise ConflictError(f"{kind.kind} {name!r}: gave up after {attempts} conflicting writes")
