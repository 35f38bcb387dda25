"""The ``kubernetes`` runtime: a real Kubernetes cluster driven through its API.

Imported only when an agent runs ``--runtime kubernetes``, so a ``local`` agent never
loads a Kubernetes client.
"""

from __future__ import annotations

from flotilla.runtimes.base import Runtime, RuntimeOptions
from flotilla.runtimes.kubernetes.config import KubernetesConfig
from flotilla.runtimes.kubernetes.runtime import KubernetesRuntime

__all__ = ["KubernetesConfig", "KubernetesRuntime", "create"]


def create(options: RuntimeOptions) -> Runtime:
    """The registry's factory (see `flotilla.runtimes.get_runtime`)."""
    return KubernetesRuntime(KubernetesConfig.from_options(options))
