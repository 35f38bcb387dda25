"""The ``local`` runtime: a small Kubernetes whose containers are local processes."""

from __future__ import annotations

from flotilla.runtimes.base import Runtime, RuntimeOptions
from flotilla.runtimes.local.config import LocalClusterConfig, NodeConfig, Timings
from flotilla.runtimes.local.runtime import LocalRuntime

__all__ = ["LocalClusterConfig", "LocalRuntime", "NodeConfig", "Timings", "create"]


def create(options: RuntimeOptions) -> Runtime:
    """The registry's factory (see `flotilla.runtimes.get_runtime`)."""
    return LocalRuntime(LocalClusterConfig.from_options(options))
