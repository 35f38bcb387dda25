"""Which store a server runs on, from one ``--store`` URL, and opening it.

``sqlite:///path`` is the embedded store in that directory (the default: the data
directory's own); ``etcd://host:port[,host:port...]`` an etcd cluster, with TLS when a CA
file is given. Parsed at the command line, so a bad URL is refused before anything
starts; opened by the server through `open_store`, the one place that knows every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flotilla.store.base import Store
from flotilla.store.etcd import EtcdConfig, open_etcd_store, parse_etcd_url
from flotilla.store.sqlite import open_sqlite_store

SQLITE = "sqlite://"
ETCD = "etcd://"


@dataclass(frozen=True, slots=True)
class StoreSpec:
    #: the SQLite store's directory, when it is one
    sqlite_dir: Path | None = None
    etcd: EtcdConfig | None = None

    def describe(self) -> str:
        if self.etcd is not None:
            return f"etcd {self.etcd.describe()}"
        return f"sqlite {self.sqlite_dir}"


def sqlite_spec(path: Path) -> StoreSpec:
    return StoreSpec(sqlite_dir=path)


def parse_store_url(
    url: str,
    *,
    etcd_ca_file: Path | None = None,
    etcd_cert_file: Path | None = None,
    etcd_key_file: Path | None = None,
) -> StoreSpec:
    """The `StoreSpec` of ``url``, or a ValueError naming what is wrong."""
    tls_given = any(f is not None for f in (etcd_ca_file, etcd_cert_file, etcd_key_file))
    if url.startswith(ETCD):
        return StoreSpec(etcd=parse_etcd_url(url, ca_file=etcd_ca_file,
                                             cert_file=etcd_cert_file,
                                             key_file=etcd_key_file))
    if url.startswith(SQLITE):
        if tls_given:
            raise ValueError("--etcd-ca-file/--etcd-cert-file/--etcd-key-file are for an "
                             "etcd:// store, not sqlite://")
        path = url[len(SQLITE):]
        if not path:
            raise ValueError(f"--store {url}: no directory; e.g. sqlite:///var/lib/flotilla")
        return sqlite_spec(Path(path))
    raise ValueError(f"--store must be sqlite:///DIR or etcd://HOST:PORT[,HOST:PORT...], "
                     f"got {url!r}")


async def open_store(spec: StoreSpec, *, keep_revisions: int | None = None,
                     disk_reserve: int | None = None) -> Store:
    """Open the store ``spec`` names. ``disk_reserve`` is the SQLite store's only (etcd
    has its own quota, --quota-backend-bytes)."""
    if spec.etcd is not None:
        if keep_revisions is None:
            return await open_etcd_store(spec.etcd)
        return await open_etcd_store(spec.etcd, keep_revisions=keep_revisions)
    assert spec.sqlite_dir is not None
    options: dict[str, int] = {}
    if keep_revisions is not None:
        options["keep_revisions"] = keep_revisions
    if disk_reserve is not None:
        options["disk_reserve"] = disk_reserve
    return await open_sqlite_store(spec.sqlite_dir, **options)
