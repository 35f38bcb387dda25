"""The controllers' informer is the shared one from `flotilla.client.informer`.

Controllers, the gateway and the DNS follow the API with the same list + watch machinery
(resume, re-list on 410, back-off with jitter, read-only cache); this module keeps the
names the controllers import.
"""

from flotilla.client.informer import (
    AddHandler,
    Cache,
    DeleteHandler,
    EventHandlers,
    Informer,
    ObjectKey,
    UpdateHandler,
    resource_version,
)

__all__ = [
    "AddHandler",
    "Cache",
    "DeleteHandler",
    "EventHandlers",
    "Informer",
    "ObjectKey",
    "UpdateHandler",
    "resource_version",
]
