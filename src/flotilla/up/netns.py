"""`flotilla up --netns`: every member cluster on a network namespace of its own.

Each cluster's agent, pods and ingress run in namespace ``flc-<tag>-<cluster>``, joined
to the namespace `up` runs in (the host) by a veth pair: host end ``flc<tag><i>``
and ``eth0`` inside. Each link has its own /29 out of ``10.213.N.0/24`` (N: the first
/24 no interface here uses yet):

    10.213.N.1/32       the control address, on the host's ``lo`` (label ``lo:flc<tag>``):
                        the API server listens there, so agents reach it over their link
    10.213.N.8i+9       host end of cluster i's link
    10.213.N.8i+10      the agent's address (its endpoint; its API connections leave
                        from it: the namespace's default route says ``src``)
    10.213.N.8i+11      the ingress address: the cluster's ingress and its pods

The gateway, DNS and control plane stay on the host. Two addresses per cluster let the
chaos cuts of `flotilla.up.partition` sever the control-plane path (agent -> API) and
the data-plane path (gateway -> pods) apart.

``<tag>`` is a hash of the data directory, so everything a run creates is found again
by name: at start (`remove_leftovers`), what an earlier `up` on the same data dir
left behind when it was SIGKILLed goes first (processes still inside its namespaces
killed, links and namespaces deleted); at stop, the same function tears it all down.
Nothing without this run's prefix is ever touched.

A namespace's name is a bind mount under /run/netns, and a mount made inside another
mount namespace (`up` itself started by ``ip netns exec``, which gives each command a
mount namespace of its own) is invisible elsewhere. So nothing here relies on seeing
it: the namespaces' inodes are recorded in ``<data-dir>/netns.json`` the moment they
exist, processes inside are found by that inode in /proc, the host ends of the links
by name, and commands that must run inside a namespace from another process
(`in_mounts_of`) enter `up`'s mount namespace first.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flotilla.up.topology import ClusterPlan

#: Every namespace and link this module creates starts with it.
PREFIX = "flc"
#: The /16 the run's /24 is taken from.
BASE = ipaddress.IPv4Network("10.213.0.0/16")
#: Inside each namespace, the cluster's end of its link.
NS_IF = "eth0"
MAX_CLUSTERS = 30
NETNS_DIR = Path("/run/netns")
#: ``ip netns exec NAME`` mounts the files of ``/etc/netns/NAME/`` over ``/etc``.
ETC_NETNS = Path("/etc/netns")
RECORD = "netns.json"
#: A cluster with WAN latency and no netem: its relay's namespace is its own plus this
#: (cluster names are DNS labels, so no cluster's namespace can end so).
RELAY_SUFFIX = ".wan"
#: The relay namespace's two ends: towards the host, towards the cluster.
RELAY_IFS = ("wan0", "wan1")
#: ``<data-dir>/latency/<cluster>``: a relay's delay, seconds one way.
LATENCY_DIR = "latency"


class NetnsError(RuntimeError):
    """A namespace step failed, or --netns cannot run here; the message says which."""


@dataclass(frozen=True, slots=True)
class ClusterLink:
    """One cluster's namespace, link and addresses."""

    cluster: str
    netns: str
    host_if: str
    host_address: str
    agent_address: str
    ingress_address: str
    block: str
    #: how latency is added: "" none, "relay" (`flotilla.up.relay`), "netem"
    latency_by: str = ""

    @property
    def relay_netns(self) -> str:
        return self.netns + RELAY_SUFFIX

    def to_json(self) -> dict[str, str]:
        return {"cluster": self.cluster, "netns": self.netns, "hostIf": self.host_if,
                "hostAddress": self.host_address, "agentAddress": self.agent_address,
                "ingressAddress": self.ingress_address, "block": self.block,
                "latencyBy": self.latency_by}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ClusterLink:
        return cls(str(raw["cluster"]), str(raw["netns"]), str(raw["hostIf"]),
                   str(raw["hostAddress"]), str(raw["agentAddress"]),
                   str(raw["ingressAddress"]), str(raw["block"]),
                   str(raw.get("latencyBy") or ""))


@dataclass(frozen=True, slots=True)
class NetnsLayout:
    tag: str
    control_address: str
    links: tuple[ClusterLink, ...]

    def link(self, cluster: str) -> ClusterLink:
        for link in self.links:
            if link.cluster == cluster:
                return link
        raise KeyError(cluster)

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "controlAddress": self.control_address,
                "links": [link.to_json() for link in self.links]}


def run_tag(data_dir: Path) -> str:
    """Six hex digits naming the data dir: one `up` per data dir, so one tag per run."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:6]


def lo_label(tag: str) -> str:
    return f"lo:{PREFIX}{tag}"


def require_usable() -> None:
    """Clear errors before anything is created: root and iproute2 are needed."""
    if os.geteuid() != 0:
        raise NetnsError("--netns needs root: it creates network namespaces and veth "
                         "pairs (run 'flotilla up --netns' as root, or without --netns)")
    if shutil.which("ip") is None:
        raise NetnsError("--netns needs iproute2's 'ip' command on PATH")


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; its stdout. A failure names the command and ip's message."""
    return ip_argv(["ip", *args], check)


def exec_prefix(netns: str) -> list[str]:
    """What runs a command inside ``netns`` (ip execs it: the pid stays the same)."""
    return ["ip", "netns", "exec", netns]


def in_mounts_of(pid: int, *args: str) -> str:
    """``ip ARGS`` inside the mount namespace of process ``pid`` (the running `up`),
    where the names of its network namespaces are mounted."""
    return ip_argv(["nsenter", f"--mount=/proc/{pid}/ns/mnt", "ip", *args])


def ip_argv(argv: list[str], check: bool = True) -> str:
    """Run ``argv``; its stdout, or `NetnsError` with its message."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise NetnsError(f"'{' '.join(argv)}' failed: {done.stderr.strip()}")
    return done.stdout


# -- the record of a run's namespaces ---------------------------------------------------

def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def namespace_inode(netns: str) -> int | None:
    """The inode of ``netns`` when its name is mounted here, else None."""
    try:
        st = os.stat(NETNS_DIR / netns)
    except OSError:
        return None
    return st.st_ino if st.st_dev == _nsfs_dev() else None


def read_record(data_dir: Path) -> dict[str, int]:
    """namespace name -> inode, as the last run on ``data_dir`` recorded them."""
    try:
        raw = json.loads((data_dir / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    inodes = raw.get("inodes") if isinstance(raw, dict) else None
    return {str(k): int(v) for k, v in (inodes or {}).items()}


def _write_record(data_dir: Path, tag: str, inodes: dict[str, int],
                  ingress: list[str] | None = None) -> None:
    path = data_dir / RECORD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"tag": tag, "inodes": inodes, "ingress": ingress or []},
                              indent=2) + "\n")
    os.replace(tmp, path)


def recorded_ingress(data_dir: Path) -> list[str]:
    """The clusters' ingress addresses the last run on ``data_dir`` recorded: where a
    data-plane cut (a host route, which outlives the links) may have been left."""
    try:
        raw = json.loads((data_dir / RECORD).read_text())
    except (OSError, ValueError):
        return []
    found = raw.get("ingress") if isinstance(raw, dict) else None
    return [str(a) for a in found] if isinstance(found, list) else []


def prohibit_routes(addresses: list[str]) -> list[str]:
    """Which of ``addresses`` have a ``prohibit`` host route on the host (the data-plane
    cut of `flotilla.up.partition`)."""
    out = []
    for line in ip("-o", "route", "show", "type", "prohibit").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].split("/", 1)[0] in addresses:
            out.append(parts[1].split("/", 1)[0])
    return sorted(out)


# -- finding what a run created --------------------------------------------------------

def namespaces(tag: str) -> list[str]:
    """The names of run ``tag``'s namespaces under /run/netns (mounted here or not)."""
    prefix = f"{PREFIX}-{tag}-"
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def host_links(tag: str) -> list[str]:
    prefix = f"{PREFIX}{tag}"
    out = []
    for line in ip("-o", "link", "show").splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@", 1)[0]
            if name.startswith(prefix):
                out.append(name)
    return sorted(out)


def control_addresses(tag: str) -> list[str]:
    """The control address(es) on lo carrying this run's label."""
    out = []
    for line in ip("-o", "-4", "addr", "show", "dev", "lo").splitlines():
        parts = line.split()
        # `-o` ends the label with a backslash standing for the folded line
        if "inet" in parts and lo_label(tag) in (x.rstrip("\\") for x in parts):
            out.append(parts[parts.index("inet") + 1])
    return out


def processes_in(inodes: set[int]) -> list[int]:
    """Live pids whose network namespace is one of ``inodes``."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino in inodes:
                    out.append(int(entry.name))
    return out


def _of_this_run(pid: int, data_dir: Path) -> bool:
    """``pid`` works for the run on ``data_dir``: it names it on its command line (the
    agent's ``--state-dir``) or works under it (a pod, in its directory there)."""
    root = str(data_dir.resolve())
    with contextlib.suppress(OSError):
        if root.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True
        cwd = os.readlink(f"/proc/{pid}/cwd")
        return cwd == root or cwd.startswith(root.rstrip("/") + "/")
    return False


def recorded_inodes(data_dir: Path) -> set[int]:
    """The recorded namespaces that are still this run's. The kernel reuses a
    namespace's inode number once it is gone (the last process inside exited), so a
    recorded number none of whose processes works for this run is someone else's
    namespace now, and nothing in it is touched."""
    record = set(read_record(data_dir).values())
    out = set()
    for pid in processes_in(record) if record else []:
        with contextlib.suppress(OSError):  # exited meanwhile
            if _of_this_run(pid, data_dir):
                out.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
    return out


def leftovers(data_dir: Path) -> list[str]:
    """Everything of the run on ``data_dir`` that exists now, for messages and tests."""
    tag = run_tag(data_dir)
    inodes = recorded_inodes(data_dir)
    return [*(f"netns {n}" for n in namespaces(tag)), *(f"link {x}" for x in host_links(tag)),
            *(f"address {a} on lo" for a in control_addresses(tag)),
            *(f"route prohibit {a}" for a in prohibit_routes(recorded_ingress(data_dir))),
            *(f"directory {d}" for d in etc_dirs(tag)),
            *(f"process {p}" for p in (processes_in(inodes) if inodes else []))]


def _kill_inside(inodes: set[int], timeout: float = 10.0) -> None:
    """SIGKILL every process in those namespaces (an agent and pods that outlived a
    killed `up`) and wait, bounded, until none is left: a namespace with processes in
    it outlives its name, and with it the link."""
    deadline = time.monotonic() + timeout
    while pids := processes_in(inodes):
        if time.monotonic() > deadline:
            raise NetnsError(f"processes {pids} in this run's network namespaces do not "
                             "exit")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def remove_leftovers(data_dir: Path) -> list[str]:
    """Tear down everything of the run on ``data_dir``; what was removed."""
    tag = run_tag(data_dir)
    found = leftovers(data_dir)
    inodes = recorded_inodes(data_dir)
    inodes |= {i for n in namespaces(tag) if (i := namespace_inode(n)) is not None}
    if inodes:
        _kill_inside(inodes)
    _reap_relays()
    for link in host_links(tag):
        ip("link", "del", link, check=False)  # deleting one end deletes the pair
    for netns in namespaces(tag):
        ip("netns", "del", netns, check=False)
        with contextlib.suppress(FileNotFoundError):  # a name mounted elsewhere only
            (NETNS_DIR / netns).unlink()
    for address in control_addresses(tag):
        ip("addr", "del", address, "dev", "lo", check=False)
    for address in prohibit_routes(recorded_ingress(data_dir)):
        ip("route", "del", "prohibit", f"{address}/32", check=False)
    for etc in etc_dirs(tag):
        shutil.rmtree(etc, ignore_errors=True)
    still = leftovers(data_dir)
    if still:
        raise NetnsError(f"cannot remove {', '.join(still)}")
    with contextlib.suppress(FileNotFoundError):
        (data_dir / RECORD).unlink()
    return found


# -- creating ---------------------------------------------------------------------------

def _used_networks() -> list[ipaddress.IPv4Network]:
    out = []
    for line in ip("-o", "-4", "addr", "show").splitlines():
        parts = line.split()
        if "inet" in parts:
            out.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    return out


def free_block() -> ipaddress.IPv4Network:
    """The first /24 of `BASE` no address here overlaps (concurrent runs on one host
    each get their own)."""
    used = _used_networks()
    for net in BASE.subnets(new_prefix=24):
        if net.network_address.packed[2] == 0:
            continue
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsError(f"no free /24 left in {BASE} for --netns")


def plan_layout(tag: str, clusters: list[str], block: ipaddress.IPv4Network) -> NetnsLayout:
    if len(clusters) > MAX_CLUSTERS:
        raise NetnsError(f"--netns supports at most {MAX_CLUSTERS} clusters")
    base = int(block.network_address)
    links = []
    for i, name in enumerate(clusters):
        first = base + 8 * (i + 1)
        links.append(ClusterLink(
            cluster=name, netns=f"{PREFIX}-{tag}-{name}", host_if=f"{PREFIX}{tag}{i}",
            host_address=str(ipaddress.ip_address(first + 1)),
            agent_address=str(ipaddress.ip_address(first + 2)),
            ingress_address=str(ipaddress.ip_address(first + 3)),
            block=f"{ipaddress.ip_address(first)}/29"))
    return NetnsLayout(tag, str(ipaddress.ip_address(base + 1)), tuple(links))


def create_link(link: ClusterLink, latency: float = 0.0) -> None:
    """The veth pair into (existing) namespace ``link.netns``, its addresses and routes;
    with a relay, two pairs through (existing) namespace ``link.relay_netns``; with
    netem, its delay on both ends."""
    ns = link.netns
    # A data-plane cut is a host route, which outlives the link: one that a killed run
    # on another data dir left for this (free) block would cut the new cluster at birth.
    ip("route", "del", "prohibit", f"{link.ingress_address}/32", check=False)
    if link.latency_by == "relay":
        relay, (outer, inner) = link.relay_netns, RELAY_IFS
        ip("link", "add", link.host_if, "type", "veth", "peer", "name", outer, "netns", relay)
        ip("-n", relay, "link", "add", inner, "type", "veth", "peer", "name", NS_IF,
           "netns", ns)
        for dev in ("lo", outer, inner):
            ip("-n", relay, "link", "set", dev, "up")
    else:
        ip("link", "add", link.host_if, "type", "veth", "peer", "name", NS_IF, "netns", ns)
    ip("addr", "add", f"{link.host_address}/29", "dev", link.host_if)
    ip("link", "set", link.host_if, "up")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "addr", "add", f"{link.agent_address}/29", "dev", NS_IF)
    ip("-n", ns, "addr", "add", f"{link.ingress_address}/29", "dev", NS_IF)
    ip("-n", ns, "link", "set", NS_IF, "up")
    # Every connection out of the namespace (the agent's to the API) leaves from the
    # agent's address; the ingress address only answers.
    ip("-n", ns, "route", "add", "default", "via", link.host_address,
       "src", link.agent_address)
    if link.latency_by == "netem":
        set_netem(link, latency)
    write_etc(link)


def write_etc(link: ClusterLink) -> None:
    """The namespace's own ``hosts`` and ``resolv.conf`` (``ip netns exec`` mounts them
    over /etc for the agent and its pods). The host's name server is out of reach from
    inside, and a lookup of the cluster's own addresses (Python's HTTPServer asks for
    the fully qualified name of the address it binds) would wait for it until the pod's
    liveness probe kills it: the hosts file answers those at once, and the name server
    named is the host end of the link, which refuses at once."""
    etc = ETC_NETNS / link.netns
    etc.mkdir(parents=True, exist_ok=True)
    try:
        host_hosts = Path("/etc/hosts").read_text()
    except OSError:
        host_hosts = "127.0.0.1\tlocalhost\n"
    (etc / "hosts").write_text(
        f"{host_hosts.rstrip()}\n# flotilla up --netns: cluster {link.cluster}\n"
        f"{link.agent_address}\t{link.cluster}-agent\n"
        f"{link.ingress_address}\t{link.cluster}-ingress\n"
        f"{link.host_address}\t{link.cluster}-host\n")
    (etc / "resolv.conf").write_text(
        f"nameserver {link.host_address}\noptions timeout:1 attempts:1\n")


def etc_dirs(tag: str) -> list[Path]:
    try:
        return sorted(p for p in ETC_NETNS.iterdir()
                      if p.name.startswith(f"{PREFIX}-{tag}-"))
    except FileNotFoundError:
        return []


# -- WAN latency ------------------------------------------------------------------------

def _tc(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 1, "", str(exc))


def netem_available(tag: str) -> bool:
    """Whether this kernel has the netem qdisc: tried on a throwaway dummy link (named
    with the run's prefix, so a crash half way leaves nothing the teardown misses)."""
    probe = f"{PREFIX}{tag}p"
    if _tc(["ip", "link", "add", probe, "type", "dummy"]).returncode != 0:
        return False
    try:
        return _tc(["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay",
                    "1ms"]).returncode == 0
    finally:
        ip("link", "del", probe, check=False)


def set_netem(link: ClusterLink, seconds: float, up_pid: int | None = None) -> None:
    """netem's delay on both ends of ``link`` (the inside end from `up`'s mounts when
    ``up_pid`` is given: the namespace's name may be visible only there)."""
    delay = f"{seconds * 1000:.3f}ms"
    outside = _tc(["tc", "qdisc", "replace", "dev", link.host_if, "root", "netem",
                   "delay", delay])
    inside_argv = ["tc", "qdisc", "replace", "dev", NS_IF, "root", "netem", "delay", delay]
    prefix = (["nsenter", f"--mount=/proc/{up_pid}/ns/mnt", "--"] if up_pid else [])
    inside = _tc([*prefix, *exec_prefix(link.netns), *inside_argv])
    for done in (outside, inside):
        if done.returncode != 0:
            raise NetnsError(f"{' '.join(done.args)}: {done.stderr.strip()}")


def delay_file(data_dir: Path, cluster: str) -> Path:
    return data_dir / LATENCY_DIR / cluster


#: Relays this process started (reaped when the teardown has killed them).
_RELAYS: list[subprocess.Popen[bytes]] = []


def start_relay(data_dir: Path, link: ClusterLink, latency: float,
                timeout: float = 10.0) -> None:
    """The relay of ``link`` inside its namespace, started and relaying (or an error)."""
    path = delay_file(data_dir, link.cluster)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    from flotilla.up.relay import write_delay
    write_delay(path, latency)
    logs = data_dir / "logs"
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = logs / f"relay-{link.cluster}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*exec_prefix(link.relay_netns), sys.executable, "-m", "flotilla.up.relay",
             *RELAY_IFS, "--delay-file", str(path), "--data-dir", str(data_dir.resolve())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    _RELAYS.append(proc)
    deadline = time.monotonic() + timeout
    while b"relaying" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise NetnsError(f"the relay of cluster {link.cluster} did not start: "
                             f"{log_path.read_text(errors='replace').strip()}")
        time.sleep(0.05)


def set_latency(data_dir: Path, link: ClusterLink, seconds: float,
                up_pid: int | None = None) -> str:
    """Change ``link``'s one-way delay on the running link; what was done."""
    if link.latency_by == "relay":
        from flotilla.up.relay import write_delay
        write_delay(delay_file(data_dir, link.cluster), seconds)
        return f"relay of {link.cluster}: {seconds * 1000:.1f} ms each way"
    if link.latency_by == "netem":
        set_netem(link, seconds, up_pid)
        return f"netem on {link.host_if}: {seconds * 1000:.1f} ms each way"
    raise NetnsError(f"cluster {link.cluster} has no latency on its link: give it "
                     "'latency:' in clusters.yaml when 'flotilla up --netns' starts")


def _reap_relays() -> None:
    for proc in list(_RELAYS):
        if proc.poll() is not None:
            _RELAYS.remove(proc)


def create(data_dir: Path, clusters: list[str],
           latencies: dict[str, float] | None = None) -> tuple[NetnsLayout, list[str]]:
    """Remove an earlier run's leftovers, then create the control address and every
    cluster's namespace and link (a cluster in ``latencies`` with a delay: netem on its
    link where the kernel has it, else a relay); the layout and what was removed first.
    On a failure half way, what was created is removed again before the error is
    raised."""
    require_usable()
    tag = run_tag(data_dir)
    removed = remove_leftovers(data_dir)
    latencies = {k: v for k, v in (latencies or {}).items() if v > 0}
    by = ("netem" if netem_available(tag) else "relay") if latencies else ""
    layout = plan_layout(tag, clusters, free_block())
    layout = replace(layout, links=tuple(
        replace(x, latency_by=by if x.cluster in latencies else "") for x in layout.links))
    inodes: dict[str, int] = {}
    ingress = [x.ingress_address for x in layout.links]

    def add_netns(name: str) -> None:
        ip("netns", "add", name)
        inode = namespace_inode(name)
        if inode is None:
            raise NetnsError(f"network namespace {name} is not mounted at "
                             f"{NETNS_DIR / name} after 'ip netns add'")
        inodes[name] = inode
        _write_record(data_dir, tag, inodes, ingress)

    try:
        ip("addr", "add", f"{layout.control_address}/32", "dev", "lo",
           "label", lo_label(tag))
        for link in layout.links:
            add_netns(link.netns)
            if link.latency_by == "relay":
                add_netns(link.relay_netns)
            create_link(link, latencies.get(link.cluster, 0.0))
            if link.latency_by == "relay":
                start_relay(data_dir, link, latencies[link.cluster])
    except BaseException:
        remove_leftovers(data_dir)
        raise
    return layout, removed


def place(plan: ClusterPlan, link: ClusterLink) -> ClusterPlan:
    """The cluster's plan with its link's addresses: ingress and pods on the ingress
    address, the agent's endpoint on its own, the block as its address range."""
    return replace(plan, address=link.ingress_address, agent_address=link.agent_address,
                   pod_address=link.ingress_address, address_block=link.block)


def layout_of(state: dict[str, Any]) -> NetnsLayout:
    """The layout up.json records; KeyError when that `up` was not started with --netns."""
    raw = state.get("netns")
    if not isinstance(raw, dict):
        raise KeyError("this 'flotilla up' was not started with --netns: its clusters "
                       "share the host's network (start it with 'flotilla up --netns')")
    return NetnsLayout(str(raw["tag"]), str(raw["controlAddress"]),
                       tuple(ClusterLink.from_json(x) for x in raw["links"]))
