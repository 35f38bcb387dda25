"""``flotilla gateway`` and ``flotilla dns``: the data plane in front of the clusters."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from flotilla.cli.credential import TOKEN_HELP, resolve_token, token_file_option
from flotilla.cli.server_list import SERVER_LIST_HELP, SERVERS
from flotilla.cli.session import CliError
from flotilla.client.servers import format_servers


def serve_until_signal(main: Callable[[], Coroutine[Any, Any, None]], *,
                       cannot_serve: str = "cannot serve") -> None:
    """Run ``main`` (a process built on `flotilla.lifecycle.serve`, which owns SIGINT
    and SIGTERM) on uvloop; its failure becomes a one-line error and a non-zero exit:
    `FatalError` and OSError by their message, anything else after its traceback is
    logged."""
    import uvloop

    from flotilla.lifecycle import FatalError, run

    try:
        run(main, loop_factory=uvloop.new_event_loop)
    except FatalError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{cannot_serve}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise CliError(f"stopped by an error: {exc}") from None


@click.command(epilog="""\b
Example:
  flotilla gateway --server https://127.0.0.1:8443 --token-file gateway.token --ca-file ca.crt \\
      --listen 127.0.0.1:8080 --region cn-east --admin-listen 127.0.0.1:8081 \\
      --tls-listen 127.0.0.1:8444
  curl -H 'Host: shop.example.test' http://127.0.0.1:8080/
  curl --resolve shop.example.test:8444:127.0.0.1 --cacert ca.crt \\
      https://shop.example.test:8444/

\b
Abuse limits (defaults suit a public listener; per worker process):
  flotilla gateway --server https://127.0.0.1:8443 --token-file gateway.token \\
      --max-connections 20000 --max-connections-per-client 100 \\
      --write-timeout 15 --max-upstream-connections 256 --max-queued-requests 512 \\
      --trusted-proxy 10.0.0.0/8 --trusted-proxy 192.168.1.7

\b
Several API servers of one control plane (the gateway fails over between them):
  flotilla gateway --server https://10.0.0.5:8443,https://10.0.0.6:8443 \\
      --token-file gateway.token --ca-file ca.crt
""")
@click.option("--server", "server_list", required=True, envvar="FLOTILLA_SERVER",
              type=SERVERS,
              metavar="URL[,URL...]",
              help=f"The control plane's API (env FLOTILLA_SERVER). {SERVER_LIST_HELP}")
@click.option("--token", envvar="FLOTILLA_TOKEN", metavar="TOKEN", help=TOKEN_HELP)
@token_file_option
@click.option("--ca-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="FLOTILLA_CA_FILE", metavar="PATH",
              help="CA certificate (PEM) the API server is verified against.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT")
@click.option("--region", help="The gateway's own region (for Locality routing).")
@click.option("--admin-listen", metavar="HOST:PORT",
              help="Where /metrics and /routes are served (by the first worker).")
@click.option("--tls-listen", metavar="HOST:PORT",
              help="HTTPS listener: hosts of TrafficPolicies with spec.tls.secretName, "
                   "certificate per host by SNI.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Processes sharing --listen (SO_REUSEPORT); one per core for throughput.")
@click.option("--max-connections", type=click.IntRange(min=1), default=10000,
              show_default=True,
              help="Open client connections per worker; past it a new one gets a 503 and "
                   "is closed (the open-file limit is raised to fit).")
@click.option("--max-connections-per-client", type=click.IntRange(min=1), default=256,
              show_default=True, help="Open client connections per client address.")
@click.option("--write-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, metavar="SECONDS",
              help="A client that takes no byte of its response for this long is cut "
                   "off; the upstream connection it held is closed.")
@click.option("--min-send-rate", type=click.FloatRange(min=0), default=1024.0,
              show_default=True, metavar="BYTES_PER_S",
              help="A client that is behind (our buffer to it full) must take at least "
                   "this many bytes a second on average over --min-send-rate-window "
                   "seconds spent behind, or it is cut with a reset (0: no minimum).")
@click.option("--min-send-rate-window", type=click.FloatRange(min=0, min_open=True),
              default=30.0, show_default=True, metavar="SECONDS",
              help="The seconds behind that --min-send-rate is averaged over.")
@click.option("--stream-idle-timeout", type=click.FloatRange(min=0, min_open=True),
              default=60.0, show_default=True, metavar="SECONDS",
              help="A response that has started and gets no byte from the upstream for "
                   "this long is cut.")
@click.option("--max-upstream-connections", type=click.IntRange(min=1), default=1024,
              show_default=True, help="Connections per endpoint (per worker).")
@click.option("--max-queued-requests", type=click.IntRange(min=0), default=1024,
              show_default=True,
              help="Requests per endpoint waiting for a connection at that cap; past it: "
                   "503.")
@click.option("--queue-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, metavar="SECONDS",
              help="How long a request may wait in that queue before its 503.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="IP|CIDR",
              help="A proxy in front of the gateway whose X-Forwarded-For is extended "
                   "(repeatable). From anyone else it is replaced by the peer address; "
                   "X-Forwarded-Proto/-Host are always the gateway's own.")
@click.option("--access-log", metavar="PATH|-|off", default="off", show_default=True,
              help="One JSON line per request (time, host, path, status, cluster, "
                   "endpoint, tries, upstream and total ms, trace id) appended to PATH "
                   "(created 0600), or '-' for stdout.")
@click.option("--otlp-endpoint", metavar="URL", envvar="FLOTILLA_OTLP_ENDPOINT",
              help="Export a span per request over OTLP/HTTP, e.g. "
                   "http://127.0.0.1:4318/v1/traces (default: no spans).")
@click.option("--name", "report_name", default="gateway", show_default=True,
              metavar="NAME",
              help="The gateway's identity name (its token's name): it writes which "
                   "clusters its health checks reach as GatewayReport "
                   "flotilla-system/NAME (the first worker only). '' writes none.")
@click.option("-v", "--verbose", is_flag=True)
def gateway(server_list: tuple[str, ...], token: str | None, token_file: Path | None,
            ca_file: Path | None, listen: str,
            region: str | None, admin_listen: str | None, tls_listen: str | None,
            workers: int, max_connections: int, max_connections_per_client: int,
            write_timeout: float, min_send_rate: float, min_send_rate_window: float,
            stream_idle_timeout: float, max_upstream_connections: int,
            max_queued_requests: int, queue_timeout: float,
            trusted_proxies: tuple[str, ...], access_log: str, otlp_endpoint: str | None,
            report_name: str, verbose: bool) -> None:
    """Run the global HTTP gateway: routes by Host (and path) to Service endpoints across
    clusters per TrafficPolicy, with health checks, outlier ejection and retries.

    Every request goes upstream with a W3C traceparent (the client's, or a new one);
    see docs/observability.md for the access log and OTLP spans."""
    from flotilla.traffic.gateway import GatewayOptions, run_gateway

    server = format_servers(server_list)
    token = resolve_token(token, token_file)
    try:
        options = GatewayOptions(
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
            write_timeout=write_timeout, stream_idle_timeout=stream_idle_timeout,
            min_send_rate=min_send_rate, min_send_rate_window=min_send_rate_window,
            max_upstream_connections=max_upstream_connections,
            max_queued_requests=max_queued_requests, queue_timeout=queue_timeout,
            trusted_proxies=trusted_proxies,
            access_log=None if access_log == "off" else access_log,
            otlp_endpoint=otlp_endpoint or None)
    except ValueError as exc:
        raise CliError(f"--trusted-proxy: {exc}" if "trusted proxy" in str(exc)
                       else str(exc), exit_code=2) from None

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s gateway %(levelname)s %(message)s")
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:  # a worker: same listener, no admin endpoint, ends with the parent
            code = 0
            try:
                serve_until_signal(functools.partial(
                    run_gateway, server, token or "", listen, region, reuse_port=True,
                    tls_listen=tls_listen, ca=ca_file, options=options))
            except CliError as exc:
                click.echo(f"Error: {exc.message}", err=True)
                code = exc.exit_code
            os._exit(code)
        children.append(pid)
    try:
        serve_until_signal(functools.partial(
            run_gateway, server, token or "", listen, region, admin_listen=admin_listen,
            reuse_port=workers > 1, tls_listen=tls_listen, ca=ca_file, options=options,
            report_name=report_name or None))
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def parse_geo(entries: tuple[str, ...]) -> dict[str, str]:
    table = {}
    for entry in entries:
        cidr, sep, region = entry.partition("=")
        if not sep or not cidr or not region:
            raise CliError(f"--geo {entry!r}: expected CIDR=REGION", exit_code=2)
        table[cidr] = region
    return table


@click.command(epilog="""\b
Example:
  flotilla dns --server https://127.0.0.1:8443 --token-file dns.token --ca-file ca.crt \\
      --listen 127.0.0.1:8053 --zone example.test --geo 127.0.11.0/24=cn-east
  dig @127.0.0.1 -p 8053 shop.example.test
  dig @127.0.0.1 -p 8053 shop.default.svc.clusterset.local
  # several API servers of one control plane (fails over between them):
  flotilla dns --server https://10.0.0.5:8443,https://10.0.0.6:8443 --token-file dns.token
""")
@click.option("--server", "server_list", required=True, envvar="FLOTILLA_SERVER",
              type=SERVERS,
              metavar="URL[,URL...]",
              help=f"The control plane's API (env FLOTILLA_SERVER). {SERVER_LIST_HELP}")
@click.option("--token", envvar="FLOTILLA_TOKEN", metavar="TOKEN", help=TOKEN_HELP)
@token_file_option
@click.option("--ca-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="FLOTILLA_CA_FILE", metavar="PATH",
              help="CA certificate (PEM) the API server is verified against.")
@click.option("--listen", default="127.0.0.1:8053", show_default=True, metavar="HOST:PORT",
              help="UDP and TCP.")
@click.option("--zone", default="example.test", show_default=True,
              help="The global zone (TrafficPolicy hosts inside it are answered).")
@click.option("--ttl", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--geo", multiple=True, metavar="CIDR=REGION",
              help="Map client addresses to regions for geo answers (repeatable).")
@click.option("--admin-listen", metavar="HOST:PORT", help="Where /metrics is served.")
@click.option("--rrl-rate", type=click.FloatRange(min=0), default=1000, show_default=True,
              help="UDP answers per second per source /24 (IPv6 /56); past it the reply is "
                   "an empty TC=1 one, so real resolvers retry over TCP. 0 turns it off.")
@click.option("--tcp-max-per-source", type=click.IntRange(min=1), default=32,
              show_default=True, help="Open TCP connections per source address.")
@click.option("-v", "--verbose", is_flag=True)
def dns(server_list: tuple[str, ...], token: str | None, token_file: Path | None,
        ca_file: Path | None, listen: str, zone: str,
        ttl: int, geo: tuple[str, ...], admin_listen: str | None, rrl_rate: float,
        tcp_max_per_source: int, verbose: bool) -> None:
    """Run the authoritative smart DNS for the global zone and clusterset.local."""
    from flotilla.dns.limits import DnsLimits
    from flotilla.dns.model import check_zone
    from flotilla.dns.server import run_dns

    server = format_servers(server_list)
    token = resolve_token(token, token_file)

    try:
        check_zone(zone)
    except ValueError as exc:
        raise CliError(f"--zone: {exc}", exit_code=2) from None

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s dns %(levelname)s %(message)s")
    geo_table = parse_geo(geo) or None
    serve_until_signal(functools.partial(run_dns, server, token or "", listen, zone,
                                         admin_listen=admin_listen, geo_table=geo_table,
                                         ttl=ttl, ca=ca_file, limits=DnsLimits(
                                             rrl_rate=rrl_rate,
                                             rrl_burst=max(1.0, 2 * rrl_rate),
                                             tcp_max_per_source=tcp_max_per_source)))
