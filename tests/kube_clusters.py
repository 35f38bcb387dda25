"""Real Kubernetes control planes for tests: kube-apiserver, kube-controller-manager
and kube-scheduler v1.20.2 built from Debian's source by ``scripts/kube-up.sh`` (cached
outside the repository), on loopback, sharing one etcd under per-cluster prefixes.

`KubeClusters.start` builds (or reuses) the binaries and starts the named clusters;
`kubectl` runs the real kubectl against one of them with ``--kubeconfig``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
KUBE_UP = ROOT / "scripts" / "kube-up.sh"


@dataclass
class KubeClusters:
    dir: Path

    @classmethod
    def start(cls, directory: Path, *names: str) -> KubeClusters:
        if shutil.which("kubectl") is None or shutil.which("etcd") is None:
            pytest.fail("kubectl and etcd are needed (scripts/test.sh installs them)")
        run = subprocess.run(["bash", str(KUBE_UP), "up", str(directory), *names],
                             capture_output=True, text=True, timeout=900, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"kube-up.sh up failed:\n{run.stderr[-4000:]}")
        return cls(directory)

    def kubeconfig(self, name: str) -> Path:
        return self.dir / name / "kubeconfig"

    def index(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.dir / "clusters.json").read_text())
        return result

    def kill_apiserver(self, name: str) -> None:
        """SIGKILL the apiserver of ``name`` (as a crash would)."""
        subprocess.run(["bash", str(KUBE_UP), "stop", str(self.dir), name], check=True,
                       timeout=30)

    def start_apiserver(self, name: str) -> None:
        subprocess.run(["bash", str(KUBE_UP), "start", str(self.dir), name], check=True,
                       timeout=120, capture_output=True)

    def stop(self) -> None:
        subprocess.run(["bash", str(KUBE_UP), "down", str(self.dir)], check=False,
                       timeout=120)

    def kubectl(self, name: str, *args: str, check: bool = True) -> str:
        run = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig(name)), *args],
                             capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "KUBECONFIG": ""})
        if check and run.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {run.stderr.strip()}")
        return run.stdout if run.returncode == 0 else run.stderr

    def kubectl_json(self, name: str, *args: str) -> Any:
        """``kubectl ... -o json``, managedFields included (kubectl from 1.21 on hides
        them unless asked with --show-managed-fields, which 1.20's does not know)."""
        extra = ["--show-managed-fields"] if args and args[0] == "get" and \
            _shows_managed_fields_flag() else []
        return json.loads(self.kubectl(name, *args, *extra, "-o", "json"))


@functools.cache
def _shows_managed_fields_flag() -> bool:
    run = subprocess.run(["kubectl", "get", "--help"], capture_output=True, text=True,
                         timeout=30, check=False)
    return "--show-managed-fields" in run.stdout
