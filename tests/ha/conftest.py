"""Fixtures of the HA tests: the store conformance suite's ``store`` (SQLite and a real
etcd) for the in-process elector tests."""

from tests.store.conftest import backend, open_store, store

__all__ = ["backend", "open_store", "store"]
