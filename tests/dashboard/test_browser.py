"""The live dashboard in headless Chromium against a real `flotilla up`: what a person
sees change on screen, with no reload, as the platform changes under it.

The tests run in file order on one platform; the last one kills a cluster. Every wait is
Playwright's ``expect`` with a deadline (it re-checks the DOM until then), never a sleep.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import NAMES, REPLICAS, Platform, app_objects, save_readme_image

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def page(browser: Any, platform: Platform) -> Iterator[Page]:
    """A fresh tab signed in through the URL `flotilla dashboard --print-url` gives.

    The platform's certificate is signed by its own CA, which this browser profile does
    not trust (as a person's browser would not until they import DATA_DIR/pki/ca.crt)."""
    context = browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(platform.signed_in_url())
    expect(tab.locator("#live")).to_have_text("live", timeout=15_000)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Page, artefacts: Path, name: str) -> Path:
    path = artefacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def ready_cell(page: Page, cluster: str) -> Any:
    return page.locator(f'.cluster[data-cluster="{cluster}"] [data-ready]')


def placement(page: Page, cluster: str, column: str) -> Any:
    return page.locator(f'#placement tr[data-cluster="{cluster}"] td.{column}')


def test_sign_in_lists_every_cluster_ready_with_its_traffic_share(
        page: Page, platform: Platform, artefacts: Path) -> None:
    # the token left the address bar and the history; it lives in this tab only
    assert "token" not in page.url
    assert page.evaluate("() => sessionStorage.getItem('flotilla.token')") == platform.api.token
    for name in NAMES:
        expect(ready_cell(page, name)).to_have_text("Ready")
    expect(page.locator("h1")).to_have_text(f"Platform: {len(NAMES)}/{len(NAMES)} clusters Ready")
    load = platform.load(limit=30)
    try:
        # the gateway's counters, through the API: every cluster serves a share
        for name in NAMES:
            expect(page.locator(f'.cluster[data-cluster="{name}"] .traffic')).to_have_text(
                re.compile(r"^[1-9][0-9]*%$"), timeout=20_000)
    finally:
        load.stop()
    save_readme_image(shot(page, artefacts, "platform"), "dashboard-platform.png")
    page.set_viewport_size(PHONE)
    shot(page, artefacts, "platform-phone")


def test_a_rollout_s_waves_advance_on_screen(page: Page, platform: Platform,
                                            artefacts: Path) -> None:
    page.click("nav >> text=Apps")
    page.click("main >> text=default/shop")
    for name in NAMES:
        expect(placement(page, name, "desired")).to_have_text("1", timeout=30_000)
        expect(placement(page, name, "ready")).to_have_text("1", timeout=60_000)
    load = platform.load(limit=150)
    try:
        platform.apply(app_objects("v2"), "shop-v2.yaml")
        expect(page.locator("#rollout-phase")).to_contain_text("revision 2", timeout=30_000)
        first, rest = page.locator('[data-wave="1"]'), page.locator('[data-wave="2"]')
        expect(first).to_have_attribute("data-result", "passed", timeout=90_000)
        # the canary passed its gate (with the figures it was judged on) while the rest
        # still waits out the pause: the waves advance one after the other
        expect(first).to_contain_text("gate: requests")
        expect(rest).not_to_have_attribute("data-result", "passed", timeout=1_000)
        shot(page, artefacts, "app-rollout-canary")
        expect(rest).to_have_attribute("data-result", "passed", timeout=90_000)
        expect(page.locator("#rollout-phase")).to_contain_text("Succeeded", timeout=30_000)
    finally:
        load.stop()
    shot(page, artefacts, "app-rollout-done")


def test_the_hierarchy_leads_down_to_a_pod_s_log_tail(page: Page, artefacts: Path) -> None:
    page.click("nav >> text=Hierarchy")
    cluster = NAMES[1]  # one node: its pod is on it
    page.click(f"ul.tree >> text={cluster}")
    page.click(f"ul.tree a >> text={cluster}-node-1")
    page.locator("li.pod a").first.click()
    page.locator("li.container a").first.click()
    expect(page.locator("#log")).to_contain_text("serving on", timeout=15_000)
    expect(page.locator(".crumbs")).to_contain_text(f"Platform > {cluster} > {cluster}-node-1")
    shot(page, artefacts, "pod-log")


def test_what_if_shows_where_the_replicas_would_go(page: Page, artefacts: Path) -> None:
    page.click("nav >> text=What-if")
    page.check(f"input[value={NAMES[0]}]")
    page.click("#whatif-run")
    row = page.locator("#whatif-table tbody tr", has_text="default/shop-deployment")
    expect(row).to_be_visible(timeout=10_000)
    after = row.locator("td").nth(2)
    expect(after).not_to_contain_text(NAMES[0])
    expect(after).to_contain_text(NAMES[1])
    shot(page, artefacts, "what-if")


def test_a_killed_cluster_turns_unknown_within_5s_and_its_replicas_move(
        page: Page, platform: Platform, artefacts: Path) -> None:
    victim = NAMES[2]
    page.evaluate("() => { window.stillTheSamePage = true; }")
    expect(ready_cell(page, victim)).to_have_text("Ready")
    platform.up.cli("chaos", "kill-cluster", victim)
    killed = time.monotonic()
    expect(ready_cell(page, victim)).to_have_text("Unknown", timeout=5_000)
    print(f"{victim} shown Unknown {time.monotonic() - killed:.1f}s after the kill")
    shot(page, artefacts, "platform-cluster-down")

    page.click("nav >> text=Apps")
    page.click("main >> text=default/shop")
    expect(placement(page, victim, "desired")).to_have_text("0", timeout=60_000)
    # every replica placed on the survivors, and ready there (the dead cluster's last
    # report does not count: nothing is placed on it any more)
    expect(page.locator("#app-summary")).to_have_text(
        f"{REPLICAS}/{REPLICAS} replicas ready; placed {REPLICAS}", timeout=60_000)
    shot(page, artefacts, "app-after-failover")

    page.click("nav >> text=Timeline")
    page.fill("#ev-text", victim)
    expect(page.locator("tr.event").first).to_contain_text(victim, timeout=10_000)
    shot(page, artefacts, "timeline")
    assert page.evaluate("() => window.stillTheSamePage === true"), "the page was reloaded"
