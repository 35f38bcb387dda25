"""A real etcd (Debian's etcd-server, /usr/bin/etcd) on free loopback ports, for tests.

One per test session: the store tests isolate themselves by key prefix instead of by
process, so the whole conformance suite costs one etcd start-up. Raft timings are short
(10 ms heartbeat) because etcd's shortest lease TTL is 1.5 election timeouts: at the
defaults a 1 s lease would become 2 s, and lease tests could not tell 1 s from 2 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

ETCD = os.environ.get("FLOTILLA_TEST_ETCD", "/usr/bin/etcd")
HOST = "127.0.0.1"


@dataclass
class EtcdProcess:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"etcd://{HOST}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_etcd(root: Path, timeout: float = 60.0) -> EtcdProcess:
    """Start etcd with its data in ``root``; return once it has a leader and serves."""
    if shutil.which(ETCD) is None:
        raise RuntimeError(f"{ETCD} not found: install Debian's etcd-server "
                           "(apt-get install -y etcd-server; scripts/test.sh does)")
    client, peer = free_port(HOST), free_port(HOST)
    data = root / "etcd-data"
    log = root / "etcd.log"
    argv = [
        ETCD, "--name", "test", "--data-dir", str(data),
        "--listen-client-urls", f"http://{HOST}:{client}",
        "--advertise-client-urls", f"http://{HOST}:{client}",
        "--listen-peer-urls", f"http://{HOST}:{peer}",
        "--initial-advertise-peer-urls", f"http://{HOST}:{peer}",
        "--initial-cluster", f"test=http://{HOST}:{peer}",
        "--heartbeat-interval", "10", "--election-timeout", "100",
        "--log-level", "warn", "--logger", "zap",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    etcd = EtcdProcess(proc, client, data, log)
    deadline = time.monotonic() + timeout
    while not _healthy(client):
        if proc.poll() is not None or time.monotonic() > deadline:
            etcd.stop()
            raise RuntimeError(f"etcd did not come up on port {client}:\n"
                               + log.read_text(errors="replace")[-3000:])
        time.sleep(0.05)  # polling a starting process, bounded by the deadline
    return etcd


def _healthy(port: int) -> bool:
    if not _answers(port):
        return False
    ctl = shutil.which("etcdctl")
    if ctl is None:
        return True
    result = subprocess.run([ctl, f"--endpoints=http://{HOST}:{port}", "endpoint", "health"],
                            capture_output=True, timeout=10, env={**os.environ,
                                                                  "ETCDCTL_API": "3"})
    return result.returncode == 0
