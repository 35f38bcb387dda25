"""The live dashboard: one static page (HTML, a small vanilla JS module, CSS) that the API
server serves at ``/ui/`` (`flotilla.api.ui`).

Nothing here runs on the server: the page talks to the API from the browser, with the
user's token, like any other client. It has no dependency and loads nothing from another
origin. What each page shows and where it comes from: docs/dashboard.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


@cache
def files() -> dict[str, Path]:
    """The files the page is made of, by name: the only paths ``/ui/`` serves, so no
    request path ever reaches the file system."""
    return {p.name: p for p in sorted(STATIC.iterdir()) if p.is_file()}
