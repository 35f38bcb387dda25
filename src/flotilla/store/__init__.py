"""State store: one small interface (`Store`) and its implementations.

Everything above this package talks to `flotilla.store.base.Store` only, so the
embedded SQLite store and a future etcd store are interchangeable.
"""
