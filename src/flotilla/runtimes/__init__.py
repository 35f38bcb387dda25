"""Runtime drivers: the seam in `base`, the registry here.

A runtime plugs in by adding one line to ``_BUILTIN`` (a lazily imported factory) or by
calling `register_runtime` — nothing else in Flotilla names a concrete runtime.
"""

from __future__ import annotations

import importlib

from flotilla.runtimes.base import Runtime, RuntimeFactory, RuntimeOptions

__all__ = ["Runtime", "RuntimeOptions", "UnknownRuntimeError", "get_runtime",
           "register_runtime", "runtime_names"]

#: name -> "module:attribute" of a RuntimeFactory; imported on first use so that an agent
#: running ``local`` never imports a Kubernetes client and vice versa.
_BUILTIN: dict[str, str] = {
    "local": "flotilla.runtimes.local:create",
    "kubernetes": "flotilla.runtimes.kubernetes:create",
}
_REGISTERED: dict[str, RuntimeFactory] = {}


class UnknownRuntimeError(LookupError):
    pass


def register_runtime(name: str, factory: RuntimeFactory) -> None:
    _REGISTERED[name] = factory


def runtime_names() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTERED})


def get_runtime(name: str) -> RuntimeFactory:
    """The factory for runtime ``name``; raises UnknownRuntimeError listing known names."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        raise UnknownRuntimeError(
            f"unknown runtime {name!r}; known runtimes: {', '.join(runtime_names())}")
    module_name, _, attr = target.partition(":")
    factory: RuntimeFactory = getattr(importlib.import_module(module_name), attr)
    _REGISTERED[name] = factory
    return factory
