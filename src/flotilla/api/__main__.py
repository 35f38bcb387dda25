"""``python -m flotilla.api --data-dir D --listen HOST:PORT``: the server without the CLI
(what the API tests launch, and a fallback when the CLI is not installed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flotilla.api.http_guard import HttpLimits
from flotilla.api.server import DEFAULT_MAX_BODY_BYTES, main


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
    return parser.parse_args()


if __name__ == "__main__":
    args = _args()
    main(args.data_dir, args.listen, max_body_bytes=args.max_body_bytes,
         keep_revisions=args.keep_revisions, bookmark_interval=args.bookmark_interval,
         insecure_http=args.insecure_http,
         http_limits=HttpLimits(args.max_inflight, args.header_timeout,
                                args.keep_alive_timeout))
