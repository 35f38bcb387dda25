"""A real `flotilla server` process for tests: started through the console script on a
free loopback port, in its own process group, always stopped."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from flotilla.pki import PkiLayout, verifying_context
from tests.helpers import free_port, wait_for_sync

FLOTILLA = str(Path(sys.executable).parent / "flotilla")


def flotilla(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; never raises on a non-zero exit."""
    return subprocess.run([FLOTILLA, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, input=input, timeout=timeout, check=False)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus any FLOTILLA_* of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    env.update(extra)
    return env


@functools.cache
def api_only_args() -> tuple[str, ...]:
    """``--no-controllers`` where `flotilla server` has it: these tests drive the API and
    the CLI, and a scheduler re-creating a binding they just deleted would make them
    flaky. Probed, not assumed, because the flag arrived with the control-plane wiring."""
    usage = flotilla("server", "--help", env=clean_env()).stdout
    return ("--no-controllers",) if "--no-controllers" in usage else ()


class ServerProcess:
    """``flotilla init`` + ``flotilla server`` on ``data_dir``; restartable on the same
    port and data, which is how tests cut every open watch."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        #: The CA `flotilla init` created; the CLI finds it in the config's context.
        self.ca = PkiLayout(data_dir).ca_cert
        self.extra_args = extra_args
        self.config = data_dir.parent / f"{data_dir.name}-client.yaml"
        self.log = data_dir.parent / f"{data_dir.name}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        init = flotilla("init", "--data-dir", str(data_dir), "--server", self.url,
                        env=clean_env(FLOTILLA_CONFIG=str(self.config)))
        assert init.returncode == 0, init.stderr
        config = yaml.safe_load(self.config.read_text())
        self.token: str = config["contexts"][0]["token"]

    def start(self) -> None:
        assert self.proc is None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [FLOTILLA, "server", "--data-dir", str(self.data_dir), "--listen",
                 f"127.0.0.1:{self.port}", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=clean_env(),
            )
        wait_for_sync(self._ready, timeout=20, interval=0.05, what=f"{self.url}/readyz")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}: "
                                 f"{self.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1,
                             verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM the process group; SIGKILL if it is not gone in 10 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    @property
    def verify(self) -> ssl.SSLContext:
        return verifying_context(self.ca)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for a CLI call that finds this server through the config file."""
        return clean_env(FLOTILLA_CONFIG=str(self.config), **extra)


def twin_servers(root: Path, *extra_args: str) -> tuple[ServerProcess, ServerProcess]:
    """A and B (not started): B's data dir is a copy of A's, so both hold the same CA,
    serving certificate, secrets key and admin token; give them one shared store in
    ``extra_args`` (an etcd URL with one key prefix) to make them replicas."""
    a = ServerProcess(root / "a", *extra_args)
    b = ServerProcess(root / "b", *extra_args)
    shutil.rmtree(b.data_dir)
    shutil.copytree(a.data_dir, b.data_dir)
    b.token, b.ca = a.token, a.ca
    return a, b
