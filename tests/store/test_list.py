"""Listing: namespaces, label selectors, paging and its continue token (both stores)."""

from __future__ import annotations

import asyncio

import pytest

from flotilla.resources.labels import parse_selector
from flotilla.store.base import Expired, Store
from tests.store.conftest import cm

R = "configmaps"


def names(items: list[dict[str, object]]) -> list[str]:
    return [o["metadata"]["name"] for o in items]  # type: ignore[index]


async def fill(store: Store) -> int:
    """31 objects; returns the revision before them."""
    base = await store.current_revision()
    await asyncio.gather(
        *(store.create(R, cm(f"o{i:02}", "ns1" if i % 2 else "ns2",
                             tier="web" if i % 3 == 0 else "db", idx=str(i)))
          for i in range(30)),
        store.create("secrets", cm("s", "ns1")),
    )
    return base


async def test_list_by_namespace_in_key_order(store: Store) -> None:
    base = await fill(store)
    everything = await store.list(R)
    assert len(everything.items) == 30
    assert everything.revision == base + 31
    assert everything.continue_token is None
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everything.items] \
        == sorted((o["metadata"]["namespace"], o["metadata"]["name"])
                  for o in everything.items)
    assert names((await store.list(R, "ns1")).items) == [f"o{i:02}" for i in range(1, 30, 2)]
    assert (await store.list(R, "nowhere")).items == []


async def test_label_selectors(store: Store) -> None:
    await fill(store)
    web = await store.list(R, selector=parse_selector("tier=web"))
    assert sorted(names(web.items)) == [f"o{i:02}" for i in range(0, 30, 3)]
    web_ns1 = await store.list(R, "ns1", selector=parse_selector("tier in (web),idx>10"))
    assert names(web_ns1.items) == ["o15", "o21", "o27"]
    none = await store.list(R, selector=parse_selector("!tier"))
    assert none.items == []


async def test_paging_with_selector_covers_everything_once(store: Store) -> None:
    base = await fill(store)
    selector = parse_selector("tier=db")
    seen: list[str] = []
    token: str | None = None
    revisions = set()
    for _ in range(100):  # bounded: 20 matches in pages of 3 need 7 pages
        page = await store.list(R, selector=selector, limit=3, continue_token=token)
        assert len(page.items) <= 3
        seen.extend(names(page.items))
        revisions.add(page.revision)
        token = page.continue_token
        if token is None:
            break
    assert sorted(seen) == sorted(names((await store.list(R, selector=selector)).items))
    assert len(seen) == len(set(seen)) == 20
    assert revisions == {base + 31}  # every page reports the revision the listing started at


async def test_exact_last_page_has_no_token(store: Store) -> None:
    await fill(store)
    first = await store.list(R, "ns1", limit=15)
    assert len(first.items) == 15
    assert first.continue_token is None


async def test_bad_and_stale_continue_tokens(store: Store) -> None:
    base = await fill(store)
    page = await store.list(R, limit=5)
    assert page.continue_token
    with pytest.raises(ValueError, match="malformed continue token"):
        await store.list(R, limit=5, continue_token="not-a-token!")
    with pytest.raises(ValueError, match="different list"):
        await store.list("secrets", limit=5, continue_token=page.continue_token)
    with pytest.raises(ValueError, match="limit"):
        await store.list(R, limit=-1)
    await store.update(R, cm("o00", "ns2"))
    await store.compact(await store.current_revision())
    with pytest.raises(Expired) as err:
        await store.list(R, limit=5, continue_token=page.continue_token)
    assert err.value.compacted_revision == base + 32


async def test_pages_show_the_first_pages_revision_despite_changes(store: Store) -> None:
    """Like an etcd range read at the list's revision: changes made between pages (to
    keys not yet returned) do not show, whatever their kind."""
    await asyncio.gather(*(store.create(R, cm(f"o{i:02}", tier="web")) for i in range(20)))
    at_start = (await store.list(R)).items
    web = parse_selector("tier=web")
    first = await store.list(R, selector=web, limit=5)
    assert first.continue_token
    o12 = await store.get(R, "default", "o12")
    await store.update(R, {**o12, "data": {"k": "changed"}})
    await store.update(R, {**o12, "data": {"k": "changed again"}})
    await store.delete(R, "default", "o15")
    await store.create(R, cm("o15", tier="web"))  # deleted then re-created
    await store.delete(R, "default", "o17")
    await store.create(R, cm("o10b", tier="web"))  # did not exist at the revision
    o18 = await store.get(R, "default", "o18")
    await store.update(R, {**o18, "metadata": {**o18["metadata"], "labels": {}}})
    pages = [first]
    for _ in range(10):
        token = pages[-1].continue_token
        if token is None:
            break
        pages.append(await store.list(R, selector=web, limit=5, continue_token=token))
    assert [p.revision for p in pages] == [first.revision] * len(pages)
    assert [o for p in pages for o in p.items] == at_start
    # A fresh list shows the changes.
    now = names((await store.list(R, selector=web)).items)
    assert "o17" not in now
    assert "o18" not in now
    assert "o10b" in now


async def test_order_is_namespace_then_name_whatever_the_characters(store: Store) -> None:
    """Names sort as (namespace, name) tuples: ``a`` before ``a-b`` and ``a.b`` although
    ``-`` and ``.`` sort below ``/`` (the etcd store's key layout must not leak)."""
    pairs = [("a", "x"), ("a-b", "a"), ("a.b", "a"), ("a", "x-y"), ("a", "x.y"), ("ab", "a"),
             ("", "cluster")]
    for namespace, name in pairs:
        await store.create(R, cm(name, namespace))
    listed = await store.list(R)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in listed.items] == \
        sorted(pairs)
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):  # bounded: 7 objects in pages of 2
        page = await store.list(R, limit=2, continue_token=token)
        seen.extend(names(page.items))
        token = page.continue_token
        if token is None:
            break
    assert seen == [name for _, name in sorted(pairs)]
    assert names((await store.list(R, "a")).items) == ["x", "x-y", "x.y"]
