"""The runtime's state file: what a restarted agent needs to adopt its pods.

One JSON document, replaced atomically (write to a temporary file, rename) after every
change, so an agent killed at any moment leaves either the old or the new state, never
a torn one. There is deliberately no fsync: the file only has to survive the agent's
death, not the machine's — after a power loss no pod process survives to be adopted,
and an fsync per change would stall the event loop on a busy disk. It
holds the last applied manifests (so a restarted cluster keeps running its workloads
even before the control plane answers), node readiness, Deployment generations and,
per pod, its template, node, ports and each container's (pid, start time).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

VERSION = 1


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: bytes | None = None

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read runtime state {self.path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise RuntimeError(f"runtime state {self.path} has an unknown format")
        return data

    def save(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        payload = json.dumps({"version": VERSION, **data}, sort_keys=True).encode()
        if payload == self._written:
            return  # most reconcile rounds change nothing worth persisting
        # 0600: the state holds Secret values from the applied manifests.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, self.path)
        self._written = payload
