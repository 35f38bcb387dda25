"""`flotilla up --ha`: three etcd members and three API servers on loopback ports.

What a highly available control plane looks like on several machines, laid out on one:

- **etcd**: Debian's ``etcd`` binary (package ``etcd-server``), three members forming one
  cluster, each with its own data dir (``<data>/etcd/etcd-N/``) and its own certificate
  from Flotilla's CA, used both to serve clients and between peers; clients and peers
  must present a certificate from the same CA (``--client-cert-auth``).
- **servers**: three ``flotilla server`` replicas, each with its own data dir
  (``<data>/servers/server-N/``) holding its own serving pair (CN ``server-N``) and its
  own etcd client certificate, all on the one store ``etcd://m1,m2,m3/flotilla``. What
  they must share is linked from the main data dir, not copied, so there is one of each:
  the CA, the token file (`up` issues tokens there; servers re-read it when it changes)
  and the secrets-at-rest key (every replica must decrypt what another wrote).

Ports are chosen once and kept in ``<data>/ha.json``: an etcd member's data remembers
the peer URLs of the cluster it joined, so a second `up --ha` in the same folder must
reuse them (and `chaos revive-*` restarts a part on the ports it had).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flotilla.api.audit import SERVERS_DIR
from flotilla.api.auth import TOKENS_FILE
from flotilla.pki import (
    client_ssl_context,
    ensure_ca,
    ensure_private_dir,
    ensure_serving_pair,
    serving_hosts,
)
from flotilla.pki.layout import PkiLayout
from flotilla.store.envelope import Envelope

#: The Debian package that ships the etcd binary.
ETCD_PACKAGE = "etcd-server"
#: Where to look for etcd first (tests and odd installs may point elsewhere).
ETCD_ENV = "FLOTILLA_ETCD"
REPLICAS = 3
HOST = "127.0.0.1"
STORE_PREFIX = "flotilla"
PORTS_FILE = "ha.json"
#: Where Debian's etcd-server installs the binary (looked at when it is not on PATH).
_FALLBACK = "/usr/bin/etcd"
#: The etcd client identity of `up` itself and of `flotilla status` (health checks).
UP_CLIENT = "flotilla-up"


class HaError(RuntimeError):
    """`up --ha` cannot run here (etcd missing, ports file broken)."""


def etcd_binary() -> str:
    """The etcd executable: $FLOTILLA_ETCD, else ``etcd`` on PATH, else /usr/bin/etcd."""
    for candidate in (os.environ.get(ETCD_ENV), shutil.which("etcd"), _FALLBACK):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise HaError(f"flotilla up --ha needs etcd, which is not installed: install Debian's "
                  f"{ETCD_PACKAGE} package (sudo apt-get install -y {ETCD_PACKAGE}), or set "
                  f"${ETCD_ENV} to an etcd binary")


@dataclass(frozen=True, slots=True)
class EtcdMember:
    name: str
    client_port: int
    peer_port: int

    @property
    def client_url(self) -> str:
        return f"https://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{HOST}:{self.peer_port}"


@dataclass(frozen=True, slots=True)
class ServerReplica:
    name: str
    listen: str

    @property
    def url(self) -> str:
        return f"https://{self.listen}"


@dataclass(frozen=True, slots=True)
class HaPlan:
    members: list[EtcdMember]
    servers: list[ServerReplica]

    def store_url(self) -> str:
        hosts = ",".join(f"{HOST}:{m.client_port}" for m in self.members)
        return f"etcd://{hosts}/{STORE_PREFIX}"

    def server_list(self) -> str:
        """Every server's URL, comma-joined: the ``--server`` of agents, gateway, DNS."""
        return ",".join(s.url for s in self.servers)


def _busy(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct free ports (all held open at once, so none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind((host, 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def plan_ha(data_dir: Path, first_listen: str) -> HaPlan:
    """The members' and servers' ports: the recorded ones, else fresh free ports.

    Server 1 listens on ``first_listen`` (``--listen``); servers 2 and 3 on the same host.
    etcd ports are reused as recorded even when busy: a member moved to other ports
    could no longer find its peers, so a clash must be an error, not a silent move."""
    path = data_dir / PORTS_FILE
    recorded: dict[str, Any] = {}
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
        except ValueError as exc:
            raise HaError(f"{path}: {exc} (remove it and the etcd/ folder to start afresh)") \
                from None
    host = first_listen.rpartition(":")[0].strip("[]") or HOST
    members = [EtcdMember(str(m["name"]), int(m["client"]), int(m["peer"]))
               for m in recorded.get("etcd", [])]
    if len(members) != REPLICAS:
        ports = _free_ports(HOST, 2 * REPLICAS)
        members = [EtcdMember(f"etcd-{i + 1}", ports[2 * i], ports[2 * i + 1])
                   for i in range(REPLICAS)]
    old = {s["name"]: str(s["listen"]) for s in recorded.get("servers", [])}
    spare = iter(_free_ports(host, REPLICAS))
    servers = [ServerReplica("server-1", first_listen)]
    for i in range(2, REPLICAS + 1):
        name = f"server-{i}"
        listen = old.get(name, "")
        h, _, p = listen.rpartition(":")
        if (not listen or listen == first_listen or h != host or not p.isdigit()
                or _busy(h, int(p))):
            listen = f"{host}:{next(spare)}"
        servers.append(ServerReplica(name, listen))
    ensure_private_dir(data_dir)
    path.write_text(json.dumps({
        "etcd": [{"name": m.name, "client": m.client_port, "peer": m.peer_port}
                 for m in members],
        "servers": [{"name": s.name, "listen": s.listen} for s in servers]}, indent=2) + "\n")
    return HaPlan(members, servers)


# -- identities -------------------------------------------------------------------------


def member_dir(data_dir: Path, member: str) -> Path:
    return data_dir / "etcd" / member


def server_dir(data_dir: Path, server: str) -> Path:
    return data_dir / SERVERS_DIR / server


def etcd_pair(layout: PkiLayout, name: str) -> tuple[Path, Path]:
    """Where the etcd certificate of ``name`` lives: a member's peer/serving pair, or a
    client's (``server-N``, ``flotilla-up``)."""
    folder = layout.pki_dir / "etcd"
    return folder / f"{name}.crt", folder / f"{name}.key"


def issue_etcd_identities(layout: PkiLayout, plan: HaPlan, client_names: list[str]) -> None:
    """A fresh pair per member (serves clients and peers; SANs: loopback) and a client
    certificate per etcd client; issued at every start, as `up` does with tokens."""
    ca = ensure_ca(layout.pki_dir)
    ensure_private_dir(layout.pki_dir / "etcd")
    for m in plan.members:
        ca.issue_peer(m.name, [HOST, "localhost"]).write(*etcd_pair(layout, m.name))
    for name in client_names:
        ca.issue_client(name, "flotilla-etcd-clients").write(*etcd_pair(layout, name))


def ensure_shared_secrets_key(data_dir: Path) -> Path:
    """The one secrets-at-rest key every replica uses (created 0600 on first use)."""
    path = PkiLayout(data_dir).secrets_key
    Envelope.load_or_create(path)
    return path


def _link(target: Path, link: Path) -> None:
    """``link`` -> ``target`` (absolute), replacing whatever ``link`` was."""
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve())


def prepare_server_dir(data_dir: Path, replica: ServerReplica) -> Path:
    """The replica's data dir: its own serving pair (CN = its name) and audit log; the
    CA, tokens and secrets key linked from the main data dir. Returns the dir."""
    main = PkiLayout(data_dir)
    folder = ensure_private_dir(server_dir(data_dir, replica.name))
    own = PkiLayout(folder)
    ensure_private_dir(own.pki_dir)
    for shared, link in ((main.ca_cert, own.ca_cert), (main.ca_key, own.ca_key),
                         (main.secrets_key, own.secrets_key),
                         (data_dir / TOKENS_FILE, folder / TOKENS_FILE)):
        _link(shared, link)
    host = replica.listen.rpartition(":")[0]
    ensure_serving_pair(own, own.server_cert, own.server_key, replica.name,
                        serving_hosts(host))
    return folder


# -- command lines ----------------------------------------------------------------------


def etcd_argv(binary: str, data_dir: Path, plan: HaPlan, member: EtcdMember) -> list[str]:
    """One member's command line. ``--initial-*`` only matter on the first start: later
    starts find the cluster in the member's data dir."""
    layout = PkiLayout(data_dir)
    cert, key = (str(p.resolve()) for p in etcd_pair(layout, member.name))
    ca = str(layout.ca_cert.resolve())
    cluster = ",".join(f"{m.name}={m.peer_url}" for m in plan.members)
    return [
        binary, "--name", member.name,
        "--data-dir", str(member_dir(data_dir, member.name).resolve()),
        "--listen-client-urls", member.client_url,
        "--advertise-client-urls", member.client_url,
        "--listen-peer-urls", member.peer_url,
        "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", cluster, "--initial-cluster-state", "new",
        "--initial-cluster-token", "flotilla-up",
        "--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
        "--client-cert-auth",
        "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
        "--peer-client-cert-auth",
        "--logger", "zap", "--log-level", "warn",
    ]


def server_store_argv(data_dir: Path, plan: HaPlan, replica: ServerReplica) -> list[str]:
    """The replica's store flags: every member, TLS with its own client certificate."""
    layout = PkiLayout(data_dir)
    cert, key = (str(p.resolve()) for p in etcd_pair(layout, replica.name))
    return ["--store", plan.store_url(), "--etcd-ca-file", str(layout.ca_cert.resolve()),
            "--etcd-cert-file", cert, "--etcd-key-file", key]


def etcd_healthy(data_dir: Path, client_url: str, client: str = UP_CLIENT,
                 timeout: float = 2.0) -> bool:
    """Whether the member at ``client_url`` answers /health with "true" (it has a leader
    and quorum), asked with ``client``'s certificate."""
    layout = PkiLayout(data_dir)
    cert, key = etcd_pair(layout, client)
    try:
        ctx = client_ssl_context(layout.ca_cert, cert=cert, key=key)
        r = httpx.get(client_url.rstrip("/") + "/health", verify=ctx, timeout=timeout)
        return r.status_code == 200 and str(r.json().get("health")) == "true"
    except (httpx.HTTPError, OSError, ValueError):
        return False


def server_ready(url: str, ca: Path, timeout: float = 2.0) -> bool:
    """Whether the API server at ``url`` answers GET /readyz with 200."""
    try:
        r = httpx.get(url.rstrip("/") + "/readyz", timeout=timeout,
                      verify=client_ssl_context(ca))
    except (httpx.HTTPError, OSError):
        return False
    return r.status_code == 200
