"""The one server-list rule (`flotilla.client.servers`)."""

from __future__ import annotations

import pytest

from flotilla.client.servers import ServerListError, format_servers, parse_servers


def test_a_list_keeps_its_order_and_normalises_each_item() -> None:
    assert parse_servers(" https://a:1/ , b:2,http://c:3") == (
        "https://a:1", "https://b:2", "http://c:3")
    assert parse_servers(["https://a:1"]) == ("https://a:1",)
    assert format_servers(parse_servers("a:1,b:2")) == "https://a:1,https://b:2"


@pytest.mark.parametrize(("text", "named"), [
    ("", "no server given"),
    (",,", "no server given"),
    ("https://a:1,ftp://b:2", "item 2 of 2: 'ftp://b:2': the scheme must be https://"),
    ("https://a:1,https://a:1/", "https://a:1 is listed twice (items 1 and 2)"),
    ("a:1,B:2,https://b:2", "https://b:2 is listed twice (items 2 and 3)"),
    ("https://a:1/api", "without a path"),
    ("https://a:notaport", "is not a URL"),
    ("https://:8443", "no host"),
    ("https://u:p@a:1", "no user or password"),
])
def test_a_bad_list_names_the_bad_item(text: str, named: str) -> None:
    with pytest.raises(ServerListError, match=named.replace("(", r"\(").replace(")", r"\)")):
        parse_servers(text)
