"""The runtime's state file: what a restarted agent needs to adopt its pods.

One JSON document, replaced atomically (write, fsync, rename) after every change, so
a crash at any moment leaves either the old or the new state, never a torn one. It
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
        # 0600: the state holds Secret values from the applied manifests.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
