"""The etcd implementation of the `Store` seam (``flotilla server --store etcd://...``).

Layout: `store` (the class callers use), `watch` (one etcd watch per Store watch),
`keys` (object <-> key/value), `config` (the URL, TLS and the gRPC channel), `errors`
(etcd's gRPC errors as Store errors). The etcd client is aetcd's generated gRPC
stubs (`aetcd.rpc`) on a `grpc.aio` channel of our own; docs/architecture.md says why.
"""

from flotilla.store.etcd.config import EtcdConfig, parse_etcd_url
from flotilla.store.etcd.store import EtcdStore, open_etcd_store

__all__ = ["EtcdConfig", "EtcdStore", "open_etcd_store", "parse_etcd_url"]
