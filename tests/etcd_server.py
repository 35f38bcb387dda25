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


def _require_etcd() -> None:
    if shutil.which(ETCD) is None:
        raise RuntimeError(f"{ETCD} not found: install Debian's etcd-server "
                           "(apt-get install -y etcd-server; scripts/test.sh does)")


def _argv(name: str, data: Path, client: int, peer: int, cluster: str) -> list[str]:
    return [
        ETCD, "--name", name, "--data-dir", str(data),
        "--listen-client-urls", f"http://{HOST}:{client}",
        "--advertise-client-urls", f"http://{HOST}:{client}",
        "--listen-peer-urls", f"http://{HOST}:{peer}",
        "--initial-advertise-peer-urls", f"http://{HOST}:{peer}",
        "--initial-cluster", cluster, "--initial-cluster-state", "new",
        "--heartbeat-interval", "10", "--election-timeout", "100",
        "--log-level", "warn", "--logger", "zap",
    ]


def _launch(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_healthy(members: list[EtcdProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for etcd in members:
        while not _healthy(etcd.port):
            if etcd.proc.poll() is not None or time.monotonic() > deadline:
                for m in members:
                    m.stop()
                raise RuntimeError(f"etcd did not come up on port {etcd.port}:\n"
                                   + etcd.log.read_text(errors="replace")[-3000:])
            time.sleep(0.05)  # polling a starting process, bounded by the deadline


def start_etcd(root: Path, timeout: float = 60.0) -> EtcdProcess:
    """Start etcd with its data in ``root``; return once it has a leader and serves."""
    _require_etcd()
    client, peer = free_port(HOST), free_port(HOST)
    data = root / "etcd-data"
    log = root / "etcd.log"
    argv = _argv("test", data, client, peer, f"test=http://{HOST}:{peer}")
    etcd = EtcdProcess(_launch(argv, log), client, data, log)
    _wait_healthy([etcd], timeout)
    return etcd


@dataclass
class EtcdCluster:
    """Several etcd members forming one cluster, each killable (SIGKILL, as a machine
    dying) and revivable on the same ports and data dir (it rejoins with its data)."""

    members: list[EtcdProcess]
    argvs: list[list[str]]

    @property
    def url(self) -> str:
        """``etcd://`` with every member: what `flotilla server --store` takes."""
        return "etcd://" + ",".join(f"{HOST}:{m.port}" for m in self.members)

    def kill(self, index: int) -> None:
        member = self.members[index]
        member.proc.send_signal(signal.SIGKILL)
        member.proc.wait(10)

    def revive(self, index: int) -> None:
        member = self.members[index]
        assert member.proc.poll() is not None, "kill the member first"
        member.proc = _launch(self.argvs[index], member.log)

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def start_etcd_cluster(root: Path, size: int = 3, timeout: float = 60.0) -> EtcdCluster:
    """``size`` members on free loopback ports, data under ``root``; returned once every
    member answers healthy (the cluster has a leader)."""
    _require_etcd()
    root.mkdir(parents=True, exist_ok=True)
    ports = [(free_port(HOST), free_port(HOST)) for _ in range(size)]
    while len({p for pair in ports for p in pair}) != 2 * size:  # free_port may repeat
        ports = [(free_port(HOST), free_port(HOST)) for _ in range(size)]
    cluster = ",".join(f"m{i}=http://{HOST}:{peer}" for i, (_, peer) in enumerate(ports))
    members, argvs = [], []
    for i, (client, peer) in enumerate(ports):
        data, log = root / f"m{i}-data", root / f"m{i}.log"
        argv = _argv(f"m{i}", data, client, peer, cluster)
        argvs.append(argv)
        members.append(EtcdProcess(_launch(argv, log), client, data, log))
    _wait_healthy(members, timeout)
    return EtcdCluster(members, argvs)


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
