"""``python -m flotilla.api --data-dir D --listen HOST:PORT``: the server without the CLI
(what the API tests launch, and a fallback when the CLI is not installed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flotilla.api.fairness_config import FairnessConfig
from flotilla.api.http_guard import HttpLimits
from flotilla.api.server import DEFAULT_MAX_BODY_BYTES, main
from flotilla.store.url import parse_store_url

_FAIR = FairnessConfig()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flotilla.api")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--listen", default="127.0.0.1:8443")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--keep-revisions", type=int, default=None,
                        help="watch history kept in the store, in revisions")
    parser.add_argument("--bookmark-interval", type=float, default=5.0,
                        help="seconds between BOOKMARK events on an idle watch")
    parser.add_argument("--insecure-http", action="store_true",
                        help="serve plain HTTP (only behind a TLS terminator)")
    defaults = HttpLimits()
    parser.add_argument("--max-inflight", type=int, default=defaults.max_inflight)
    parser.add_argument("--header-timeout", type=float, default=defaults.header_timeout)
    parser.add_argument("--keep-alive-timeout", type=float,
                        default=defaults.keep_alive_timeout)
    parser.add_argument("--user-rate", type=float, default=_FAIR.user_rate)
    parser.add_argument("--user-burst", type=int, default=_FAIR.user_burst)
    parser.add_argument("--users-total-rate", type=float, default=_FAIR.users_total_rate)
    parser.add_argument("--system-rate", type=float, default=_FAIR.system_rate)
    parser.add_argument("--system-burst", type=int, default=_FAIR.system_burst)
    parser.add_argument("--max-watches-per-identity", type=int, default=_FAIR.max_watches)
    parser.add_argument("--min-watch-timeout", type=float, default=_FAIR.min_watch_timeout)
    parser.add_argument("--watch-recheck", type=float, default=_FAIR.watch_recheck,
                        help="seconds between an open watch's token checks")
    parser.add_argument("--store", default=None,
                        help="sqlite:///DIR (default: the data dir) or etcd://HOST:PORT,...")
    args = parser.parse_args()
    fairness = FairnessConfig(
        user_rate=args.user_rate, user_burst=args.user_burst,
        users_total_rate=args.users_total_rate, system_rate=args.system_rate,
        system_burst=args.system_burst, max_watches=args.max_watches_per_identity,
        min_watch_timeout=args.min_watch_timeout, watch_recheck=args.watch_recheck)
    if fairness.problems():
        parser.error("; ".join(fairness.problems()))
    args.fairness = fairness
    return args


if __name__ == "__main__":
    args = _args()
    try:
        spec = parse_store_url(args.store) if args.store else None
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    main(args.data_dir, args.listen, max_body_bytes=args.max_body_bytes,
         keep_revisions=args.keep_revisions, bookmark_interval=args.bookmark_interval,
         insecure_http=args.insecure_http, fairness=args.fairness,
         http_limits=HttpLimits(args.max_inflight, args.header_timeout,
                                args.keep_alive_timeout),
         store_spec=spec)
