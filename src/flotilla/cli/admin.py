"""``flotilla init``, ``flotilla server`` and ``flotilla cert create``: setting up and
running a control plane, and the certificates of its parts."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flotilla.api.fairness_config import FairnessConfig
from flotilla.cli.config import (
    DEFAULT_CONTEXT,
    DEFAULT_LISTEN,
    ConfigError,
    config_path,
    normalise_server,
    write_context,
)
from flotilla.cli.output import echo, note
from flotilla.cli.session import CliError


def default_data_dir() -> Path:
    env = os.environ.get("FLOTILLA_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "flotilla"


_FAIR = FairnessConfig()
_DATA_DIR_HELP = "State directory (store, token hashes). Default: $FLOTILLA_DATA_DIR or " \
                 "~/.local/share/flotilla."


@click.command(epilog="""\b
Examples:
  flotilla init
  flotilla init --data-dir ./state --server https://127.0.0.1:9000 --context lab
  FLOTILLA_CONFIG=./client.yaml flotilla init --data-dir ./state
""")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
@click.option("--server", "server_url", default=f"https://{DEFAULT_LISTEN}", show_default=True,
              metavar="URL", help="Server address to write into the client config; the "
              "server certificate is issued for its host.")
@click.option("--context", "context", default=DEFAULT_CONTEXT, show_default=True,
              metavar="NAME", help="Name of the context written (and made current).")
def init(data_dir: Path | None, server_url: str, context: str) -> None:
    """Create the CA, the server certificate, the admin token and the client config.

    The CA and the API server's pair go to DATA_DIR/pki/ (the CA certificate is public;
    keys are 0600). The token is printed once: the data directory keeps only its hash.
    The client config ($FLOTILLA_CONFIG, else ~/.config/flotilla/config.yaml, mode 0600)
    gets a context binding the server, the CA and the token, made current, so later
    commands need no flags and the token is only ever sent to that server.
    """
    from urllib.parse import urlsplit

    from flotilla.api.auth import ensure_admin_token  # server-side code: import on use
    from flotilla.pki import ensure_server_pair

    data_dir = data_dir or default_data_dir()
    url = normalise_server(server_url)
    host = urlsplit(url).hostname or "127.0.0.1"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        layout = ensure_server_pair(data_dir, host)
        token = ensure_admin_token(data_dir)
    except OSError as exc:
        raise CliError(f"cannot set up {data_dir}: {exc.strerror or exc}") from None
    if token is None:
        raise CliError(
            f"{data_dir} already has an admin token, and only its hash is kept, so it "
            f"cannot be shown again; use the config file you saved it in "
            f"({config_path()}) or start over with a new --data-dir")
    try:
        path = write_context(context, url, token=token, ca=layout.ca_cert.resolve())
    except (OSError, ConfigError) as exc:
        raise CliError(f"cannot write the client config {config_path()}: "
                       f"{getattr(exc, 'strerror', None) or exc}") from None
    echo(f"admin token (shown only this once): {token}")
    note(f"CA certificate: {layout.ca_cert} (clients verify the server with it)")
    note(f"client config written to {path} (context {context}: server {url}, mode 0600)")
    note(f"start the server with: flotilla server --data-dir {data_dir} --listen "
         f"{url.split('://', 1)[1]}")


@click.command(epilog="""\b
Examples:
  flotilla server --data-dir ./state --listen 127.0.0.1:8443
  flotilla server --listen 127.0.0.1:0      # any free port; the real one is printed
  flotilla server --insecure-http           # plain HTTP, behind your own TLS proxy only
  flotilla server --max-inflight 64 --header-timeout 5   # a small machine
  flotilla server --user-rate 5 --user-burst 10 --max-watches-per-identity 20
  flotilla server --min-watch-timeout 300   # watches end after 5-10 min; clients resume
  flotilla server --store sqlite:///srv/store    # the store apart from DATA_DIR
  flotilla server --store etcd://127.0.0.1:2379              # objects in etcd
  flotilla server --store etcd://127.0.0.1:2379/plane-b      # another plane, same etcd
  flotilla server --store etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 \\
      --etcd-ca-file ca.crt --etcd-cert-file client.crt --etcd-key-file client.key
  flotilla server --store etcd://127.0.0.1:2379 --name cp-1   # one of several replicas
  flotilla server --store etcd://127.0.0.1:2379 --name cp-2 --leader-lease-duration 8 \\
      --leader-renew-deadline 6     # a slower etcd: fail over in ~8 s instead of ~4.5 s

\b
Replicas (docs/ha.md): every server serves the API; only the holder of the Lease
flotilla-system/flotilla-controllers (holderIdentity = --name) runs the controllers, and
their writes are fenced by that Lease's revision.

\b
Limits (docs/api.md): bodies, YAML and JSON shapes, header time, requests in flight.

\b
Fairness (docs/api-fairness.md): each token gets a request bucket by its role's level:
admin is exempt; agent, gateway and dns tokens are the system level, each with its own
--system-rate bucket that no user's traffic draws from; every other token gets
--user-rate, and all of them together --users-total-rate. Over a limit: 429
TooManyRequests with Retry-After.
""")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to serve the API on.")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=3 * 1024 * 1024,
              show_default=True, help="Largest request body accepted (413 beyond).")
@click.option("--max-inflight", type=click.IntRange(min=1), default=256, show_default=True,
              metavar="N", help="Requests served at once (watches and health probes not "
              "counted); beyond, 503 with Retry-After.")
@click.option("--header-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, metavar="SECONDS", help="Time a client has to send a "
              "request's headers (slowloris guard); then 408 and the connection closes.")
@click.option("--keep-alive-timeout", type=click.FloatRange(min=0.1), default=5.0,
              show_default=True, metavar="SECONDS",
              help="Idle time before a keep-alive connection is closed.")
@click.option("--keep-revisions", type=click.IntRange(min=1), default=None, metavar="N",
              help="Watch history to keep, in revisions: a watcher resuming from an older "
                   "one must re-list (410). Default: the store's.")
@click.option("--disk-reserve", default="64Mi", show_default=True, metavar="QUANTITY",
              help="Free space kept on the store's disk: below it, writes that grow the "
                   "store get 507 (deletes and heartbeats go on). 0 turns it off.")
@click.option("--store", "store_url", metavar="URL", default=None,
              help="Where objects live: sqlite:///DIR (default: the data directory) or "
                   "etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (keys under PREFIX, default "
                   "/flotilla/). The data directory keeps the PKI, tokens, audit log and "
                   "secrets key either way.")
@click.option("--etcd-ca-file", type=click.Path(dir_okay=False, path_type=Path),
              help="CA bundle that signed etcd's server certificates: turns TLS to etcd on.")
@click.option("--etcd-cert-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Client certificate for etcd (with --etcd-key-file).")
@click.option("--etcd-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Private key of --etcd-cert-file.")
@click.option("--name", "server_name", metavar="NAME", default=None,
              help="This server's identity among replicas: the holderIdentity it writes "
                   "in the controller leader Lease. Default: HOSTNAME-PORT of --listen.")
@click.option("--leader-lease-duration", type=click.FloatRange(min=1), default=4.0,
              show_default=True, metavar="SECONDS", help="Replicas: a leader Lease not "
              "renewed this long (on the observer's clock) may be taken over.")
@click.option("--leader-renew-deadline", type=click.FloatRange(min=0.1), default=3.0,
              show_default=True, metavar="SECONDS", help="Replicas: the leader stops its "
              "controllers when it could not renew for this long (< the lease duration); "
              "it renews every third of it.")
@click.option("--leader-retry-period", type=click.FloatRange(min=0.05), default=0.5,
              show_default=True, metavar="SECONDS",
              help="Replicas: how often a candidate tries to take the leader Lease.")
@click.option("--cluster-grace-period", type=click.FloatRange(min=0.1), default=3.0,
              show_default=True, help="Seconds without a heartbeat before a cluster is "
              "Ready=Unknown and tainted unreachable.")
@click.option("--no-controllers", is_flag=True,
              help="Serve the API only (no scheduler, health or failover controllers).")
@click.option("--insecure-http", is_flag=True,
              help="Serve plain HTTP instead of HTTPS: only for a TLS terminator in front "
                   "on the same host (logged as a warning at every start).")
@click.option("--user-rate", type=click.FloatRange(min=0), default=_FAIR.user_rate,
              show_default=True, metavar="PER_SECOND",
              help="Requests/s of each user token (not admin, not a component); 0: no limit.")
@click.option("--user-burst", type=click.IntRange(min=1), default=_FAIR.user_burst,
              show_default=True, help="Requests a user token may make at once.")
@click.option("--users-total-rate", type=click.FloatRange(min=0),
              default=_FAIR.users_total_rate, show_default=True, metavar="PER_SECOND",
              help="Requests/s of all user tokens together (burst: twice); 0: no limit.")
@click.option("--system-rate", type=click.FloatRange(min=0), default=_FAIR.system_rate,
              show_default=True, metavar="PER_SECOND",
              help="Requests/s of each agent, gateway and dns token; 0: no limit.")
@click.option("--system-burst", type=click.IntRange(min=1), default=_FAIR.system_burst,
              show_default=True, help="Requests an agent, gateway or dns token may make "
              "at once.")
@click.option("--max-watches-per-identity", type=click.IntRange(min=1),
              default=_FAIR.max_watches, show_default=True, metavar="N",
              help="Open watches per token, admin included (429 beyond).")
@click.option("--min-watch-timeout", type=click.FloatRange(min=0.1, max=7 * 86400),
              default=_FAIR.min_watch_timeout, show_default=True, metavar="SECONDS",
              help="Each watch ends after a random time in [SECONDS, 2*SECONDS); clients "
                   "resume from their last resourceVersion.")
def server(data_dir: Path | None, listen: str, max_body_bytes: int, max_inflight: int,
           header_timeout: float, keep_alive_timeout: float, keep_revisions: int | None,
           disk_reserve: str, cluster_grace_period: float,
           no_controllers: bool, insecure_http: bool, user_rate: float, user_burst: int,
           users_total_rate: float, system_rate: float, system_burst: int,
           max_watches_per_identity: int, min_watch_timeout: float,
           store_url: str | None = None, etcd_ca_file: Path | None = None,
           etcd_cert_file: Path | None = None, etcd_key_file: Path | None = None,
           server_name: str | None = None, leader_lease_duration: float = 4.0,
           leader_renew_deadline: float = 3.0, leader_retry_period: float = 0.5) -> None:
    """Run the control plane's API server until SIGINT/SIGTERM.

    It serves HTTPS only: the CA and the serving pair (for --listen's host, localhost
    and 127.0.0.1) are created in DATA_DIR/pki/ when missing, or re-issued when the
    listen address changed. Clients verify it with DATA_DIR/pki/ca.crt. On first start
    it creates the admin token and prints it once (unless `flotilla init` already did).
    Ready when GET /readyz answers 200.
    """
    from flotilla.api.http_guard import HttpLimits
    from flotilla.api.plane import (
        ApiMetrics,
        ElectionTimers,
        control_plane_tasks,
        default_server_name,
    )
    from flotilla.api.server import main as run  # heavy: import on use
    from flotilla.api.server import parse_listen
    from flotilla.lifecycle import FatalError
    from flotilla.resources.quantity import integer_amount
    from flotilla.store.url import parse_store_url

    try:
        parse_listen(listen)
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    if server_name is not None and not server_name.strip():
        raise CliError("--name must not be empty", exit_code=2)
    name = server_name.strip() if server_name else default_server_name(listen)
    election = ElectionTimers(leader_lease_duration, leader_renew_deadline,
                              leader_renew_deadline / 3, leader_retry_period)
    if election.problems():
        raise CliError("; ".join(election.problems()), exit_code=2)
    spec = None
    if store_url is None and (etcd_ca_file or etcd_cert_file or etcd_key_file):
        raise CliError("--etcd-ca-file/--etcd-cert-file/--etcd-key-file need "
                       "--store etcd://HOST:PORT", exit_code=2)
    if store_url is not None:
        try:
            spec = parse_store_url(store_url, etcd_ca_file=etcd_ca_file,
                                   etcd_cert_file=etcd_cert_file, etcd_key_file=etcd_key_file)
        except ValueError as exc:
            raise CliError(str(exc), exit_code=2) from None
    try:
        reserve = integer_amount("disk-reserve", disk_reserve)
    except ValueError as exc:
        raise CliError(f"--disk-reserve: {exc}", exit_code=2) from None
    data_dir = data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        metrics = ApiMetrics()  # the controllers count on the API server's /metrics
        background = () if no_controllers else control_plane_tasks(
            cluster_grace_period, server_name=name, election=election, metrics=metrics)
        fairness = FairnessConfig(
            user_rate=user_rate, user_burst=user_burst, users_total_rate=users_total_rate,
            system_rate=system_rate, system_burst=system_burst,
            max_watches=max_watches_per_identity, min_watch_timeout=min_watch_timeout)
        run(data_dir, listen, max_body_bytes=max_body_bytes, keep_revisions=keep_revisions,
            disk_reserve=reserve, background=background, insecure_http=insecure_http,
            http_limits=HttpLimits(max_inflight, header_timeout, keep_alive_timeout),
            fairness=fairness, store_spec=spec, metrics=metrics, server_name=name)
    except KeyboardInterrupt:
        return
    except FatalError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot serve on {listen} from {data_dir}: "
                       f"{exc.strerror or exc}") from None


@click.group()
def cert() -> None:
    """Certificates from a data directory's CA (for parts started by hand)."""


@cert.command("create", epilog="""\b
Examples:
  flotilla cert create east-1 --host 127.0.11.1 --data-dir ./state --out ./east-1
  flotilla agent ... --tls-cert ./east-1/east-1.crt --tls-key ./east-1/east-1.key
""")
@click.argument("name")
@click.option("--host", "hosts", multiple=True, required=True, metavar="ADDR",
              help="Address or DNS name the certificate is valid for (repeatable).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to write NAME.crt and NAME.key into.")
def cert_create(name: str, hosts: tuple[str, ...], data_dir: Path | None, out: Path) -> None:
    """Issue a serving pair NAME.crt/NAME.key from the data directory's CA (created if
    missing), valid for every --host: what an agent started by hand serves its endpoint
    with. Both files are written 0600 (the key never leaves them)."""
    from flotilla.pki import PkiLayout, ensure_ca, write_private

    if not name or "/" in name or name.startswith("."):
        raise CliError(f"NAME {name!r}: use a plain name such as the cluster's", exit_code=2)
    layout = PkiLayout(data_dir or default_data_dir())
    try:
        pair = ensure_ca(layout.pki_dir).issue_server(name, hosts)
        out.mkdir(parents=True, exist_ok=True)
        write_private(out / f"{name}.crt", pair.cert_pem)
        write_private(out / f"{name}.key", pair.key_pem)
    except OSError as exc:
        raise CliError(f"cannot issue {name}: {exc.strerror or exc}") from None
    echo(str(out / f"{name}.crt"))
    echo(str(out / f"{name}.key"))
    note(f"issued by {layout.ca_cert} for {', '.join(hosts)}")
