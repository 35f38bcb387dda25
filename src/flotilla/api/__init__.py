"""The REST API server: Kubernetes-style resource paths over the Store, with watch,
bearer-token auth, OpenAPI and Prometheus metrics.

`flotilla.api.registry.Registry` holds the resource semantics (defaulting, generations,
status sub-resource, finalizers) and is also the in-process `ResourceClient` the
controllers use; the HTTP layer (`app`, `routes`, `watch`) is a thin transport over it.
"""
