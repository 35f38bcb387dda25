"""Gateway benchmark: the same wrk load against the backends directly, HAProxy, nginx and
the Flotilla gateway, all in front of the same fast backends (nginx ``return 200``).

    .venv/bin/python bench/gateway_bench.py [--duration 5] [--rounds 3] [--workers 2]
    .venv/bin/python bench/gateway_bench.py --tls   # HTTPS with keep-alive

With ``--tls`` HAProxy, nginx and the gateway terminate TLS with the same certificate
(ECDSA P-256 from `flotilla.pki.authority`, served for every name), wrk speaks HTTPS to
them and plain HTTP to the backends; "direct" stays plain HTTP to the backends.

Needs the Debian packages wrk, haproxy and nginx. Everything listens on 127.0.0.1 with
free ports; every process started is stopped at the end. Prints req/s, p50 and p99 per
target (each the median over the rounds) and the gateway against HAProxy and nginx: the
ratio of the medians and, because the targets of one round run within a minute of each
other on a shared machine, the median of the per-round ratios. ``--workers`` gives HAProxy
(nbthread), nginx (worker_processes) and the gateway (processes on one SO_REUSEPORT port)
the same number of workers.

``--baseline-src DIR`` adds the target ``flotilla-base``: the same gateway run from
another checkout's ``src`` (e.g. ``git archive main src | tar -x -C /tmp/base``), so a
change is measured against the code before it in the same invocation, interleaved.
``--access-log`` adds ``flotilla-log``: this gateway with its access log written to a
file (a JSON line per request), to measure what the log costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "bench.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: str


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def run_wrk(name: str, port: int, args: argparse.Namespace) -> Result:
    scheme = "https" if args.tls and name != "direct" else "http"
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
         "--latency", "-H", f"Host: {HOST}", f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=args.duration + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    err = re.search(r"(Socket errors:.*|Non-2xx or 3xx responses:.*)", out)
    return Result(name, rps, p50, p99, err.group(1) if err else "")


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in its own session (so it is stopped as a group), output dropped."""
        p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def measure(name: str, port: int, args: argparse.Namespace, procs: Procs,
            started: list[subprocess.Popen[bytes]]) -> Result:
    """One warm-up second, then the measured run; the target's processes are stopped
    afterwards so they do not take CPU from the next target."""
    try:
        wait_port(port)
        run_wrk(name, port, argparse.Namespace(**{**vars(args), "duration": 1}))
        result = run_wrk(name, port, args)
        print(f"  {name:<10} {result.rps:>10.0f} req/s  p50 {result.p50_ms:.2f} ms  "
              f"p99 {result.p99_ms:.2f} ms", flush=True)
        return result
    finally:
        for p in started:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)


def nginx_conf(tmp: Path, name: str, workers: int, server_block: str) -> Path:
    d = tmp / name
    (d / "logs").mkdir(parents=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  {server_block}
}}
""")
    return conf


def write_certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """One serving pair for every TLS target: certificate, key, and both in one file
    (HAProxy's ``crt``)."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from flotilla.pki.authority import CertificateAuthority

    pair = CertificateAuthority.create("bench-ca").issue_server(HOST, [HOST, "127.0.0.1"])
    cert, key, pem = tmp / "tls.crt", tmp / "tls.key", tmp / "tls.pem"
    pair.write(cert, key)
    pem.write_bytes(pair.cert_pem + pair.key_pem)
    pem.chmod(0o600)
    return cert, key, pem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--workers", type=int, default=2,
                    help="per proxy: HAProxy nbthread, nginx worker_processes, gateway "
                         "processes on one SO_REUSEPORT port")
    ap.add_argument("--backends", type=int, default=2)
    ap.add_argument("--only", default="", help="comma list of targets to run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per target, interleaved; the median run is reported")
    ap.add_argument("--tls", action="store_true",
                    help="the proxies terminate TLS (same certificate), wrk uses https")
    ap.add_argument("--baseline-src", type=Path,
                    help="also run the gateway from this src directory (flotilla-base)")
    ap.add_argument("--access-log", action="store_true",
                    help="also run this gateway with its access log on (flotilla-log)")
    args = ap.parse_args()
    # SIGTERM (e.g. from ``timeout``) unwinds like Ctrl-C, so every process we started
    # is stopped by the ``finally`` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in ("wrk", "haproxy", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is not installed: apt-get install -y wrk haproxy nginx")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    procs = Procs()
    load_before = os.getloadavg()
    only = set(filter(None, args.only.split(",")))
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            bports = [free_port() for _ in range(args.backends)]
            listens = "\n".join(f"listen 127.0.0.1:{p};" for p in bports)
            conf = nginx_conf(tmp, "backends", 1, f"""
  server {{ {listens}
    location / {{ return 200 "ok\\n"; }} }}""")
            procs.start([nginx, "-c", str(conf), "-p", str(tmp / "backends")])
            for p in bports:
                wait_port(p)

            targets: list[tuple[str, int]] = [("direct", bports[0])]
            cert, key, pem = write_certificate(tmp)
            hbind = f" ssl crt {pem} alpn http/1.1" if args.tls else ""
            nssl = (f" ssl; ssl_certificate {cert}; ssl_certificate_key {key}; "
                    f"ssl_session_cache shared:S:1m") if args.tls else ""

            hport = free_port()
            servers = "\n".join(f"  server b{i} 127.0.0.1:{p}" for i, p in enumerate(bports))
            hcfg = tmp / "haproxy.cfg"
            hcfg.write_text(f"""
global
  nbthread {args.workers}
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 1s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:{hport}{hbind}
  default_backend be
backend be
  balance roundrobin
{servers}
""")
            targets.append(("haproxy", hport))

            nport = free_port()
            ups = "\n".join(f"server 127.0.0.1:{p};" for p in bports)
            nconf = nginx_conf(tmp, "proxy", args.workers, f"""
  upstream be {{ {ups} keepalive 64; }}
  server {{ listen 127.0.0.1:{nport}{nssl};
    location / {{ proxy_pass http://be; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }} }}""")
            targets.append(("nginx", nport))

            gport = free_port()
            targets.append(("flotilla", gport))
            if args.baseline_src:
                targets.append(("flotilla-base", free_port()))
            if args.access_log:
                targets.append(("flotilla-log", free_port()))

            def start_target(name: str, port: int) -> list[subprocess.Popen[bytes]]:
                if name == "haproxy":
                    return [procs.start([haproxy, "-f", str(hcfg), "-db"])]
                if name == "nginx":
                    return [procs.start([nginx, "-c", str(nconf), "-p", str(tmp / "proxy")])]
                if name in ("flotilla", "flotilla-base", "flotilla-log"):
                    listen = ["--listen", f"127.0.0.1:{port}"]
                    if args.tls:
                        listen = ["--listen", "127.0.0.1:0", "--tls-listen",
                                  f"127.0.0.1:{port}", "--cert", str(cert), "--key", str(key)]
                    cmd = [sys.executable, str(HERE / "gateway" / "serve_static.py"),
                           *listen, "--host", HOST,
                           *[a for p in bports for a in ("--backend", f"127.0.0.1:{p}")]]
                    if args.workers > 1:
                        cmd.append("--reuse-port")
                    if name == "flotilla-log":
                        cmd += ["--access-log", str(tmp / "access.log")]
                    env = None
                    if name == "flotilla-base":
                        base = args.baseline_src.resolve()
                        env = {**os.environ, "PYTHONPATH": str(base)}
                        cmd[1] = str(base.parent / "bench" / "gateway" / "serve_static.py") \
                            if (base.parent / "bench").exists() else cmd[1]
                    return [procs.start(cmd, env) for _ in range(args.workers)]
                return []

            runs: dict[str, list[Result]] = {}
            for i in range(args.rounds):  # interleaved: a noisy minute hits every target
                print(f"round {i + 1}/{args.rounds}", flush=True)
                for name, port in targets:
                    if only and name not in only:
                        continue
                    runs.setdefault(name, []).append(
                        measure(name, port, args, procs, start_target(name, port)))
        finally:
            procs.stop_all()
    report(runs, args, load_before, os.getloadavg())


def report(runs: dict[str, list[Result]], args: argparse.Namespace,
           load_before: tuple[float, float, float],
           load_after: tuple[float, float, float]) -> None:
    med = statistics.median
    print(f"\n{'HTTPS (TLS at the proxy), ' if args.tls else ''}"
          f"medians of {args.rounds} interleaved rounds, "
          f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
          f"{args.backends} nginx backends, {args.workers} worker(s) per proxy, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    print(f"{'target':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for name, rs in runs.items():
        errors = "; ".join(sorted({r.errors for r in rs if r.errors}))
        print(f"{name:<10} {med(r.rps for r in rs):>10.0f} {med(r.p50_ms for r in rs):>8.2f} "
              f"{med(r.p99_ms for r in rs):>8.2f}  {errors}")
    g = runs.get("flotilla")
    for other in ("haproxy", "nginx", "flotilla-base", "flotilla-log"):
        o = runs.get(other)
        if not g or not o:
            continue
        ratios = [a.rps / b.rps for a, b in zip(g, o, strict=True)]
        diffs = [a.p99_ms - b.p99_ms for a, b in zip(g, o, strict=True)]
        print(f"flotilla/{other}: throughput {med(r.rps for r in g) / med(r.rps for r in o):.0%}"
              f" (per round: {' '.join(f'{x:.0%}' for x in ratios)}; median {med(ratios):.0%}),"
              f" p99 {med(r.p99_ms for r in g) - med(r.p99_ms for r in o):+.2f} ms (per round:"
              f" {' '.join(f'{x:+.2f}' for x in diffs)}; median {med(diffs):+.2f} ms)")


if __name__ == "__main__":
    main()
