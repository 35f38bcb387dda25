"""The dashboard's page weight and time to first render, on a running demo.

    flotilla up --demo &                                  # in this folder, then:
    .venv/bin/python bench/dashboard_bench.py --rounds 9  # reads ./.flotilla/up.json

Drives Debian's headless Chromium (/usr/bin/chromium) through Playwright. Each round is
a fresh browser context (empty cache, a new TLS session) that opens the signed-in URL
(`flotilla dashboard --print-url`'s) and records:

* page weight: the bytes of every HTML, JS and CSS response the page loaded (what the
  package serves; the API's JSON is data, counted apart);
* first contentful paint (the browser's ``paint`` timing: the page's frame drawn);
* time to data: from navigation start until every cluster's Ready state is on screen
  (the page opened its four watch streams and rendered their first events), read from
  the page's own ``performance.now()`` when Playwright sees the last cluster's state.

The reference, in the same invocation and the same browser: ``/healthz`` of the same
server (a static two-byte text page over the same TLS), whose first contentful paint is
the floor of "a page from this server". Medians of ``--rounds`` rounds; the ratios say
what the dashboard adds over that floor.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
STATIC_TYPES = ("text/html", "text/javascript", "text/css")


def fcp(page: Any) -> float:
    value = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
    return float(value) if value is not None else float("nan")


def dashboard_round(browser: Browser, url: str, clusters: list[str]) -> dict[str, float]:
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    sizes = {"static": 0, "data": 0}

    def on_response(response: Any) -> None:
        media = response.headers.get("content-type", "")
        if "watch=" in response.url:
            return  # a stream: it never ends, and it is data
        try:
            body = response.body()
        except Exception:
            return
        sizes["static" if media.startswith(STATIC_TYPES) else "data"] += len(body)

    page.on("response", on_response)
    page.goto(url)
    for name in clusters:
        expect(page.locator(f'.cluster[data-cluster="{name}"] [data-ready]')).to_have_text(
            "Ready", timeout=30_000)
    data_ms = float(page.evaluate("() => performance.now()"))
    paint = fcp(page)
    context.close()
    return {"static": sizes["static"], "data": sizes["data"], "fcp": paint, "data_ms": data_ms}


def reference_round(browser: Browser, url: str) -> float:
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(url)
    expect(page.locator("body")).to_have_text("ok")
    paint = fcp(page)
    context.close()
    return paint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path(".flotilla/up.json"))
    parser.add_argument("--rounds", type=int, default=9)
    opts = parser.parse_args()
    state = json.loads(opts.state.read_text())
    server = str(state["server"]).split(",")[0]
    url = f"{server}/ui/#token={quote(state['token'], safe='')}"
    clusters = [str(c["name"]) for c in state["clusters"]]
    rows, refs = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            dashboard_round(browser, url, clusters)  # warm the server, not the browser
            for _ in range(opts.rounds):
                refs.append(reference_round(browser, f"{server}/healthz"))
                rows.append(dashboard_round(browser, url, clusters))
        finally:
            browser.close()
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    ref = statistics.median(refs)
    print(f"machine: {platform.machine()}, {len(clusters)} clusters, {opts.rounds} rounds, "
          "medians")
    print(f"page weight (HTML+JS+CSS as served): {int(med['static'])} bytes; "
          f"API data before the first full render: {int(med['data'])} bytes "
          "(plus the watch streams)")
    print(f"first contentful paint: dashboard {med['fcp']:.0f} ms, reference /healthz "
          f"{ref:.0f} ms (x{med['fcp'] / ref:.2f})")
    print(f"every cluster's Ready state on screen: {med['data_ms']:.0f} ms "
          f"(x{med['data_ms'] / ref:.2f} the reference's first paint)")


if __name__ == "__main__":
    main()
