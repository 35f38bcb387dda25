"""``python -m flotilla.api --data-dir D --listen HOST:PORT``: the server without the CLI
(what the API tests launch, and a fallback when the CLI is not installed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flotilla.api.server import DEFAULT_MAX_BODY_BYTES, main
from flotilla.store.url import parse_store_url


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
    parser.add_argument("--store", default=None,
                        help="sqlite:///DIR (default: the data dir) or etcd://HOST:PORT,...")
    return parser.parse_args()


if __name__ == "__main__":
    args = _args()
    try:
        spec = parse_store_url(args.store) if args.store else None
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    main(args.data_dir, args.listen, max_body_bytes=args.max_body_bytes,
         keep_revisions=args.keep_revisions, bookmark_interval=args.bookmark_interval,
         insecure_http=args.insecure_http, store_spec=spec)
