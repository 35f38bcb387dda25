"""Start, watch and stop the processes of `flotilla up`.

Each part is a real process running the ``flotilla`` command itself, so what `up` runs
is exactly what an operator would run by hand on several machines. Every member cluster
(its agent and the agent's pods) gets its own process group: `chaos kill-cluster` kills
that group as a machine dying would, and shutdown can reach every pod through it.

Every hop is TLS: before anything starts, `up` makes sure the data directory has its CA
and the API server's pair, and issues each agent a serving pair for its cluster's
address (`agent_tls_argv`); every part verifies the API against the CA (``--ca-file``),
and so do `up`'s own readiness checks and every CLI reading up.json's ``ca``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from flotilla.api.auth import add_token, ensure_admin_token, hash_token, load_tokens
from flotilla.api.authz.builtin import DNS, GATEWAY
from flotilla.client.http import verify_for
from flotilla.pki import ensure_server_pair, ensure_serving_pair
from flotilla.pki.files import ensure_private_dir
from flotilla.pki.layout import PkiLayout
from flotilla.runtimes.local.procs import become_subreaper
from flotilla.up import ha, kube_members
from flotilla.up import netns as netns_mod
from flotilla.up import prometheus as prom
from flotilla.up.identities import agent_component, issue_all, register_clusters
from flotilla.up.state import (
    STOPPED,
    STOPPING,
    locked,
    mark_mine,
    owned_by_me,
    owner,
    read_state,
    why_not_running,
    write_state,
)
from flotilla.up.state import pid_alive as pid_alive  # where callers have found it
from flotilla.up.topology import ClusterPlan

Say = Callable[[str], None]


@dataclass
class UpOptions:
    data_dir: Path
    clusters: list[ClusterPlan]
    listen: str = "127.0.0.1:8443"
    gateway_listen: str | None = "127.0.0.1:8080"
    gateway_admin_listen: str | None = "127.0.0.1:8081"
    #: the gateway's HTTPS listener (certificates from the Secrets policies name)
    gateway_tls_listen: str | None = "127.0.0.1:8444"
    dns_listen: str | None = "127.0.0.1:8053"
    dns_admin_listen: str | None = "127.0.0.1:8054"
    dns_zone: str = "example.test"
    heartbeat_interval: float = 1.0
    cluster_grace_period: float = 3.0
    #: the gateway's own region (Locality routing prefers it); default: the first
    #: cluster's region, as if the gateway ran next to it
    gateway_region: str | None = None
    ready_timeout: float = 60.0
    extra_env: dict[str, str] = field(default_factory=dict)
    #: three etcd members and three servers on them (`flotilla.up.ha`) instead of one
    #: server on SQLite
    ha: bool = False
    #: start Prometheus on this HOST:PORT (`flotilla.up.prometheus`); None: do not
    prometheus_listen: str | None = None
    #: every cluster on a network namespace of its own (`flotilla.up.netns`); root only
    netns: bool = False


def flotilla_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "flotilla", *args]


def obtain_token(data_dir: Path) -> str:
    """The admin token `up` hands to its parts and prints: new on first start, else the
    one a previous `up` in this data dir recorded, else a fresh extra admin token (the
    data dir keeps only hashes, so a lost token cannot be recovered, only replaced)."""
    created = ensure_admin_token(data_dir)
    if created is not None:
        return created
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        previous = str(read_state(data_dir)["token"])
        if any(r.sha256 == hash_token(previous) for r in load_tokens(data_dir)):
            return previous
    return add_token(data_dir, "up")


def start_process(argv: list[str], log_path: Path, *, new_group: bool,
                  env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=new_group, env={**os.environ, **(env or {})},
        )


def agent_argv(opts: UpOptions, plan: ClusterPlan, server: str, token_file: Path) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in sorted(plan.labels.items()))
    argv = flotilla_argv(
        "agent", "--server", server, "--token-file", str(token_file), "--cluster", plan.name,
        "--region", plan.region, "--zone", plan.zone,
        *kube_members.runtime_argv(opts.data_dir, plan), "--address", plan.address,
        "--state-dir", str(opts.data_dir / "clusters" / plan.name),
        "--heartbeat-interval", str(opts.heartbeat_interval),
        "--admin-listen", f"{plan.agent_address or plan.address}:0",
    )
    if plan.pod_address:
        argv += ["--pod-address", plan.pod_address]
    if labels:
        argv += ["--labels", labels]
    return argv


def agent_tls_argv(layout: PkiLayout, cluster: str, address: str,
                   *more: str) -> list[str]:
    """The agent's TLS flags: the CA to verify the API with, and a serving pair for its
    endpoint on the cluster's address(es) (issued now when missing or stale)."""
    cert, key = layout.agent_cert(cluster), layout.agent_key(cluster)
    hosts = list(dict.fromkeys([address, *(m for m in more if m)]))
    ensure_serving_pair(layout, cert, key, f"agent-{cluster}", hosts)
    return ["--ca-file", str(layout.ca_cert.resolve()), "--tls-cert", str(cert.resolve()),
            "--tls-key", str(key.resolve())]


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of every live process in process group ``pgid``, from /proc.

    Zombies are left out: a killed agent stays a zombie until its parent reaps it, yet
    nothing of it runs any more.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append((int(entry.name), fields[0]))
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def group_state(pgid: int) -> str:
    """"running", "paused" (SIGSTOPped leader) or "dead", for `flotilla status`."""
    members = group_members(pgid)
    if not members:
        return "dead"
    return "paused" if all(state in ("T", "t") for _, state in members) else "running"


def reap_adopted(own: set[int]) -> None:
    """Reap zombie children this process adopted as a subreaper. The children it
    started itself (``own``) are left to their ``Popen``, which must see their status."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


class Up:
    """One `flotilla up`: `start()`, then `wait()` until a signal, then `stop()`."""

    def __init__(self, opts: UpOptions, say: Say = print) -> None:
        self.opts = opts
        self.say = say
        self.server_url = f"https://{opts.listen}"
        self.pki = PkiLayout(opts.data_dir)
        self.ca = self.pki.ca_cert.resolve()
        self._verify: ssl.SSLContext | bool = True
        self.token = ""
        self.server: subprocess.Popen[bytes] | None = None
        #: what agents, gateway and DNS get as --server: every server's URL with --ha
        self.client_servers = self.server_url
        #: with --ha: the etcd members' and servers' processes, by name
        self.ha_procs: dict[str, subprocess.Popen[bytes]] = {}
        self.credentials: dict[str, Path] = {}
        self.others: dict[str, subprocess.Popen[bytes]] = {}
        #: with --netns: the namespaces and links this run created (torn down by stop)
        self.netns: netns_mod.NetnsLayout | None = None
        #: Set by the signal handler. A plain flag, not a threading.Event: Event.set()
        #: takes a lock that the interrupted Event.wait() may hold at that very moment,
        #: which deadlocked `up` on Ctrl-C now and then.
        self._stop_requested = False

    # -- start -------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Start every part. A SIGTERM or Ctrl-C during start-up raises
        KeyboardInterrupt, so the caller's ``finally: stop()`` still cleans up."""
        signal.signal(signal.SIGTERM, _interrupt)
        become_subreaper()
        opts = self.opts
        os.umask(0o077)  # logs, stores and state of every part: this user's only
        ensure_private_dir(opts.data_dir)
        logs = opts.data_dir / "logs"
        if opts.netns:
            opts = self._start_netns()
        elif any(p.latency for p in opts.clusters):
            raise netns_mod.NetnsError("'latency:' in clusters.yaml needs 'flotilla up "
                                       "--netns' (each cluster on a link of its own)")
        self.token = obtain_token(opts.data_dir)
        ensure_server_pair(opts.data_dir, opts.listen.rpartition(":")[0])
        self._verify = verify_for(self.server_url, self.ca)
        self.credentials = issue_all(opts.data_dir, opts.clusters,
                                     gateway=bool(opts.gateway_listen), dns=bool(opts.dns_listen))
        state: dict[str, Any] = {
            "server": self.server_url, "token": self.token, "ca": str(self.ca),
            "dataDir": str(opts.data_dir.resolve()), **owner(), "clusters": [],
        }
        if self.netns is not None:
            state["netns"] = self.netns.to_json()
        if opts.ha:
            state.update(self._start_ha(logs))
        else:
            self.say(f"starting the control plane on {self.server_url} "
                     f"(SQLite in {opts.data_dir})")
            self.server = start_process(
                flotilla_argv("server", "--data-dir", str(opts.data_dir), "--listen",
                              opts.listen, "--cluster-grace-period",
                              str(opts.cluster_grace_period)),
                logs / "server.log", new_group=True, env=self._server_env())
            wait_until(self._server_ready, 30, f"the API server on {self.server_url} "
                       f"(see {logs / 'server.log'})")
            state["serverPid"] = self.server.pid
        register_clusters(self._call, opts.clusters)
        # Kubernetes members: their control planes first (state says so at once, so a
        # failure below still stops them), then a node agent beside each agent.
        if kube_members.started_here(opts.clusters):
            state["kube"] = {"dir": str(kube_members.kube_dir(opts.data_dir))}
            with locked(opts.data_dir):
                write_state(opts.data_dir, state)
            kube_members.start_control_planes(opts.data_dir, opts.clusters, self.say)
        for index, plan in enumerate(opts.clusters):
            argv = agent_argv(opts, plan, self.client_servers,
                              self.credentials[agent_component(plan.name)])
            argv += agent_tls_argv(self.pki, plan.name, plan.address, plan.agent_address)
            if self.netns is not None:
                argv = [*netns_mod.exec_prefix(self.netns.link(plan.name).netns), *argv]
            log = logs / f"agent-{plan.name}.log"
            proc = start_process(argv, log, new_group=True, env=opts.extra_env)
            self.others[f"agent-{plan.name}"] = proc
            state["clusters"].append({
                "name": plan.name, "region": plan.region, "zone": plan.zone,
                "address": plan.address, "labels": plan.labels, "pid": proc.pid,
                "pgid": proc.pid, "argv": argv, "log": str(log),
                **kube_members.start_node_agent(opts.data_dir, plan, index, start_process,
                                                opts.extra_env),
            })
            self.say(f"  cluster {plan.name:<10} region {plan.region:<9} zone "
                     f"{plan.zone:<11} ingress {plan.address}  (pgid {proc.pid})")
        for name, listen, argv in self._edge_commands():
            argv = [*argv, "--ca-file", str(self.ca)]  # TLS: verify the API with the CA
            proc = start_process(argv, logs / f"{name}.log", new_group=True, env=opts.extra_env)
            self.others[name] = proc
            state[name] = {"listen": listen, "pid": proc.pid, "pgid": proc.pid,
                           "argv": argv}
            admin = opts.gateway_admin_listen if name == "gateway" else opts.dns_admin_listen
            if admin:
                state[name]["admin"] = admin
        if opts.prometheus_listen:
            state["prometheus"] = self._start_prometheus(state, logs)
        with locked(opts.data_dir):
            write_state(opts.data_dir, state)
        self.say(f"waiting for {len(opts.clusters)} cluster(s) to report Ready...")
        wait_until(self._clusters_ready, opts.ready_timeout, "every cluster to become Ready",
                   interval=0.2)
        return state

    def _start_netns(self) -> UpOptions:
        """Create every cluster's namespace and link (an earlier run's leftovers
        removed first) and move the API server to the control address; the options
        with the clusters' link addresses. Refused while another `up` runs on this data
        dir: its namespaces are not leftovers."""
        opts = self.opts
        if opts.ha:
            raise netns_mod.NetnsError("--netns does not combine with --ha yet")
        if any(p.is_kubernetes for p in opts.clusters):
            raise netns_mod.NetnsError("--netns does not combine with Kubernetes members "
                                       "yet (runtime: kubernetes in clusters.yaml)")
        with contextlib.suppress(FileNotFoundError, ValueError):
            previous = read_state(opts.data_dir)
            if why_not_running(previous) is None and not owned_by_me(previous):
                raise netns_mod.NetnsError(
                    f"another 'flotilla up' (pid {previous.get('pid')}) runs on "
                    f"{opts.data_dir}; stop it first")
        layout, removed = netns_mod.create(opts.data_dir, [p.name for p in opts.clusters],
                                           {p.name: p.latency for p in opts.clusters})
        self.netns = layout
        if removed:
            self.say(f"removed what an earlier run left behind: {', '.join(removed)}")
        port = opts.listen.rpartition(":")[2]
        self.opts = opts = replace(
            opts, listen=f"{layout.control_address}:{port}",
            clusters=[netns_mod.place(p, layout.link(p.name)) for p in opts.clusters])
        self.server_url = self.client_servers = f"https://{opts.listen}"
        self.say(f"network namespaces: control address {layout.control_address}; "
                 + ", ".join(f"{x.cluster} {x.netns} ({x.block})" for x in layout.links))
        return opts

    def _start_prometheus(self, state: dict[str, Any], logs: Path) -> dict[str, Any]:
        """Prometheus with the generated config; the agents' targets follow the
        Clusters while `up` runs (`refresh_targets`)."""
        opts, listen = self.opts, str(self.opts.prometheus_listen)
        binary = prom.prometheus_binary()
        config = prom.generate_config(opts.data_dir, self.ca)
        prom.static_targets(opts.data_dir, state)
        self.refresh_targets()
        argv = prom.prometheus_argv(binary, opts.data_dir, config, listen)
        proc = start_process(argv, logs / "prometheus.log", new_group=True)
        self.others["prometheus"] = proc
        url = f"http://{listen}"
        self.say(f"  prometheus   {url}  (pgid {proc.pid}; config {config})")
        wait_until(lambda: self._prometheus_ready(proc, url), 30,
                   f"Prometheus on {url} (see {logs / 'prometheus.log'})")
        return {"url": url, "pid": proc.pid, "pgid": proc.pid, "argv": argv,
                "config": str(config.resolve())}

    def _prometheus_ready(self, proc: subprocess.Popen[bytes], url: str) -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"Prometheus exited with code {proc.returncode}; see "
                               f"{self.opts.data_dir / 'logs' / 'prometheus.log'}")
        try:
            return httpx.get(url + "/-/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def refresh_targets(self) -> None:
        """Rewrite the agents' scrape targets from the Clusters (a revived agent has a
        new port; clusters come and go). Quietly skipped while the API does not answer:
        the last file stays, and Prometheus reports those targets down."""
        r = self._get("/apis/cluster.flotilla.io/v1alpha1/clusters")
        if r is not None and r.status_code == 200:
            prom.agent_targets(self.opts.data_dir, list(r.json().get("items", [])))

    def _start_ha(self, logs: Path) -> dict[str, Any]:
        """Three etcd members, then three servers on them; their up.json entries."""
        opts = self.opts
        binary = ha.etcd_binary()
        plan = ha.plan_ha(opts.data_dir, opts.listen)
        ha.ensure_shared_secrets_key(opts.data_dir)
        ha.issue_etcd_identities(self.pki, plan,
                                 [*(s.name for s in plan.servers), ha.UP_CLIENT])
        self.client_servers = plan.server_list()
        out: dict[str, Any] = {"etcd": [], "servers": [], "store": plan.store_url()}
        self.say(f"starting {len(plan.members)} etcd members ({binary})")
        for m in plan.members:
            ensure_private_dir(ha.member_dir(opts.data_dir, m.name))
            argv = ha.etcd_argv(binary, opts.data_dir, plan, m)
            log = logs / f"{m.name}.log"
            proc = start_process(argv, log, new_group=True)
            self.ha_procs[m.name] = proc
            out["etcd"].append({"name": m.name, "url": m.client_url, "peerUrl": m.peer_url,
                                "pid": proc.pid, "pgid": proc.pid, "argv": argv,
                                "log": str(log)})
            self.say(f"  etcd {m.name:<8} {m.client_url}  (pgid {proc.pid})")
        wait_until(lambda: self._etcd_ready(plan), 60, "the etcd cluster to have a leader "
                   f"(see {logs}/etcd-*.log)", interval=0.2)
        self.say(f"starting {len(plan.servers)} API servers on {plan.store_url()}")
        for replica in plan.servers:
            folder = ha.prepare_server_dir(opts.data_dir, replica)
            argv = flotilla_argv(
                "server", "--data-dir", str(folder.resolve()), "--listen", replica.listen,
                "--name", replica.name,
                "--cluster-grace-period", str(opts.cluster_grace_period),
                *ha.server_store_argv(opts.data_dir, plan, replica))
            log = logs / f"{replica.name}.log"
            env = self._server_env()
            proc = start_process(argv, log, new_group=True, env=env)
            self.ha_procs[replica.name] = proc
            out["servers"].append({"name": replica.name, "url": replica.url, "pid": proc.pid,
                                   "pgid": proc.pid, "argv": argv, "log": str(log),
                                   "dataDir": str(folder.resolve()), "env": env})
            self.say(f"  server {replica.name:<8} {replica.url}  (pgid {proc.pid})")
        for replica in plan.servers:
            wait_until(functools.partial(self._replica_ready, replica.name, replica.url), 60,
                       f"the API server {replica.name} on {replica.url} "
                       f"(see {logs / (replica.name + '.log')})")
        out["serverPid"] = self.ha_procs[plan.servers[0].name].pid
        return out

    def _etcd_ready(self, plan: ha.HaPlan) -> bool:
        for m in plan.members:
            proc = self.ha_procs[m.name]
            if proc.poll() is not None:
                raise RuntimeError(f"etcd member {m.name} exited with code "
                                   f"{proc.returncode}; see "
                                   f"{self.opts.data_dir / 'logs' / (m.name + '.log')}")
        return all(ha.etcd_healthy(self.opts.data_dir, m.client_url) for m in plan.members)

    def _replica_ready(self, name: str, url: str) -> bool:
        proc = self.ha_procs[name]
        if proc.poll() is not None:
            raise RuntimeError(f"the API server {name} exited with code {proc.returncode}; "
                               f"see {self.opts.data_dir / 'logs' / (name + '.log')}")
        try:
            r = httpx.get(url + "/readyz", timeout=2.0, verify=self._verify)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def _server_env(self) -> dict[str, str]:
        """The rollout controller's analysis gates read the gateway's /metrics."""
        o, env = self.opts, dict(self.opts.extra_env)
        if o.gateway_listen and o.gateway_admin_listen:
            env.setdefault("FLOTILLA_GATEWAY_METRICS",
                           f"http://{o.gateway_admin_listen}/metrics")
        return env

    def _edge_commands(self) -> list[tuple[str, str, list[str]]]:
        o, out = self.opts, []
        if o.gateway_listen:
            argv = flotilla_argv("gateway", "--server", self.client_servers,
                                 "--token-file", str(self._credential(GATEWAY)),
                                 "--listen", o.gateway_listen, "--region",
                                 o.gateway_region or o.clusters[0].region)
            if o.gateway_admin_listen:
                argv += ["--admin-listen", o.gateway_admin_listen]
            if o.gateway_tls_listen:
                argv += ["--tls-listen", o.gateway_tls_listen]
            # a JSON line per request, trace id included (docs/observability.md)
            argv += ["--access-log", str((o.data_dir / "logs" / "gateway-access.log")
                                         .resolve())]
            out.append(("gateway", o.gateway_listen, argv))
        if o.dns_listen:
            argv = flotilla_argv("dns", "--server", self.client_servers,
                                 "--token-file", str(self._credential(DNS)),
                                 "--listen", o.dns_listen, "--zone", o.dns_zone)
            if o.dns_admin_listen:
                argv += ["--admin-listen", o.dns_admin_listen]
            out.append(("dns", o.dns_listen, argv))
        return out

    def _get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.server_url + path, timeout=2.0, verify=self._verify,
                             headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError:
            return None

    def _credential(self, component: str) -> Path:
        """Where `issue_all` writes ``component``'s token (known before it does)."""
        return self.credentials.get(component) or PkiLayout(self.opts.data_dir).credential(
            component)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        """One admin call to the API (for `register_clusters`)."""
        r = httpx.request(method, self.server_url + path, json=body, timeout=5.0,
                          verify=self._verify,
                          headers={"Authorization": f"Bearer {self.token}"})
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def _server_ready(self) -> bool:
        if self.server is not None and self.server.poll() is not None:
            raise RuntimeError(f"the API server exited with code {self.server.returncode}; "
                               f"see {self.opts.data_dir / 'logs' / 'server.log'}")
        r = self._get("/readyz")
        return r is not None and r.status_code == 200

    def _clusters_ready(self) -> bool:
        r = self._get("/apis/cluster.flotilla.io/v1alpha1/clusters")
        if r is None or r.status_code != 200:
            return False
        ready = {
            c["metadata"]["name"] for c in r.json().get("items", [])
            if any(cond.get("type") == "Ready" and cond.get("status") == "True"
                   for cond in (c.get("status") or {}).get("conditions") or [])
        }
        return all(p.name in ready for p in self.opts.clusters)

    # -- run ---------------------------------------------------------------------------

    def request_stop(self, *_args: object) -> None:
        self._stop_requested = True

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM (or the API server dies)."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        refreshed = time.monotonic()
        while not self._stop_requested:
            time.sleep(0.2)  # a signal runs the handler at once; the flag is seen next
            if self.opts.prometheus_listen and time.monotonic() - refreshed >= 1.0:
                self.refresh_targets()
                refreshed = time.monotonic()
            for p in [*self.others.values(), *self.ha_procs.values()]:
                p.poll()  # reap parts killed by chaos, so they do not linger as zombies
            reap_adopted(self._own_pids())
            if self.server is not None and self.server.poll() is not None:
                self.say(f"the API server exited (code {self.server.returncode}); stopping")
                return

    # -- stop --------------------------------------------------------------------------

    def _own_pids(self) -> set[int]:
        own = {p.pid for p in [*self.others.values(), *self.ha_procs.values()]}
        return own | ({self.server.pid} if self.server is not None else set())

    def _wait_groups_gone(self, groups: list[int], deadline: float) -> None:
        while any(group_alive(g) for g in groups) and time.monotonic() < deadline:
            for p in [*self.others.values(), *self.ha_procs.values()]:
                p.poll()  # reap, so the group leader does not linger as a zombie
            reap_adopted(self._own_pids())
            time.sleep(0.05)

    def _terminate(self, groups: list[int], grace: float) -> None:
        """SIGTERM ``groups`` (SIGCONT first: a paused one cannot exit), SIGKILL what is
        left after ``grace`` seconds, and wait (bounded) until they are gone."""
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                signal_group(pgid, signal.SIGCONT)
            signal_group(pgid, signal.SIGTERM)
        self._wait_groups_gone(groups, time.monotonic() + grace)
        for pgid in groups:
            signal_group(pgid, signal.SIGKILL)
        self._wait_groups_gone(groups, time.monotonic() + 5.0)  # SIGKILL is not instant

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every group (clusters as recorded in up.json, so revived ones too),
        wait up to ``grace`` seconds, SIGKILL what is left, then the server. A second
        Ctrl-C or SIGTERM cannot cut this short and leave processes behind.

        up.json says "stopping" before the first signal (so `chaos revive-cluster`, which
        checks under the same lock, cannot add an agent this stop would miss) and
        "stopped" at the end; a file another `up` wrote is neither read nor changed."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        groups: list[int] = []
        state = mark_mine(self.opts.data_dir, STOPPING)
        for c in state.get("clusters", []):
            groups += [int(c["pgid"]), *(int(g) for g in c.get("groups", []))]
        groups += [int(state[k]["pgid"]) for k in ("gateway", "dns", "prometheus")
                   if isinstance(state.get(k), dict)]
        groups += [p.pid for p in self.others.values()]
        self._terminate(sorted(set(groups)), grace)
        for p in self.others.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        # --ha: the servers once their clients are gone, etcd last (servers need it to
        # stop cleanly); as recorded in up.json, so revived ones too.
        for kind in ("servers", "etcd"):
            prefix = "server-" if kind == "servers" else "etcd-"
            self._terminate(sorted({int(e["pgid"]) for e in state.get(kind, [])}
                                   | {p.pid for n, p in self.ha_procs.items()
                                      if n.startswith(prefix)}), grace)
        for p in self.ha_procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                signal_group(self.server.pid, signal.SIGKILL)
                self.server.wait(timeout=5)
        if self.server is not None:
            signal_group(self.server.pid, signal.SIGKILL)
        # the Kubernetes control planes `up` started, once nothing uses them
        try:
            kube_members.stop_control_planes(self.opts.data_dir, state)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            self.say(f"stopping the Kubernetes control planes: {exc}")
        reap_adopted(self._own_pids())
        if self.netns is not None:
            try:
                netns_mod.remove_leftovers(self.opts.data_dir)
            except netns_mod.NetnsError as exc:  # still say stopped; the next start retries
                self.say(f"flotilla up: {exc}")
        mark_mine(self.opts.data_dir, STOPPED)
        self.say("flotilla up: everything stopped")
