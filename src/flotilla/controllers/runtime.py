"""The controller runtime in one import: informers, work queue, controllers, manager.

Split into small modules (`informer`, `workqueue`, `controller`, `permanent`, `manager`);
this module is the stable name the rest of the code base imports from.
"""

from flotilla.controllers.controller import (
    Controller,
    LookupFunc,
    MapFunc,
    Reconciler,
    Result,
    own_key,
)
from flotilla.controllers.informer import Cache, EventHandlers, Informer, ObjectKey
from flotilla.controllers.manager import (
    AlwaysLeader,
    ControllerManager,
    LeaderElector,
    LostLeadership,
    background,
)
from flotilla.controllers.permanent import PermanentError
from flotilla.controllers.workqueue import (
    ExponentialBackoff,
    QueueShutDown,
    RateLimiter,
    WorkQueue,
)

__all__ = [
    "AlwaysLeader",
    "Cache",
    "Controller",
    "ControllerManager",
    "EventHandlers",
    "ExponentialBackoff",
    "Informer",
    "LeaderElector",
    "LookupFunc",
    "LostLeadership",
    "MapFunc",
    "ObjectKey",
    "PermanentError",
    "QueueShutDown",
    "RateLimiter",
    "Reconciler",
    "Result",
    "WorkQueue",
    "background",
    "own_key",
]
