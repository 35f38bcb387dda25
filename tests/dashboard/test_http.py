"""The dashboard's door in a real API server: the page is public and locked down (CSP,
no cookie, nothing from elsewhere), its data views are not, and bad input is a 4xx."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from flotilla.api.auth import add_token
from flotilla.cli.dashboard_cmd import dashboard_url
from flotilla.dashboard import STATIC, files
from tests.api.conftest import ServerProcess, start_server
from tests.helpers import wait_for_sync

CLUSTER = {"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
           "metadata": {"name": "solo"}, "spec": {"region": "r1", "zone": "r1-a"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("ui"))
    try:
        r = httpx.post(f"{srv.url}/apis/cluster.flotilla.io/v1alpha1/clusters", json=CLUSTER,
                       headers=srv.headers(), verify=srv.verify)
        assert r.status_code == 201, r.text
        yield srv
    finally:
        srv.stop()
        srv.kill()


def get(srv: ServerProcess, path: str, token: str | None = None, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(srv.url + path, headers=headers, verify=srv.verify, timeout=10,
                     **kw)  # type: ignore[arg-type]


def test_the_page_needs_no_token_and_is_locked_down(server: ServerProcess) -> None:
    for path, media in (("/ui/", "text/html"), ("/ui/app.js", "text/javascript"),
                        ("/ui/style.css", "text/css")):
        r = get(server, path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith(media)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "set-cookie" not in r.headers


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/..%2Fpyproject.toml",
                                  "/ui/%2e%2e/__init__.py", "/ui/__init__.py"])
def test_only_the_page_s_own_files_are_served(server: ServerProcess, path: str) -> None:
    assert get(server, path).status_code == 404


def test_nothing_is_loaded_from_another_origin() -> None:
    """No CDN at run time: every URL the page names is relative to this server."""
    assert set(files()) >= {"index.html", "app.js", "style.css"}
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path.name
        assert not re.search(r"""(import|from)\s*\(?["'](https?:)?//""", text), path.name
        assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", text), \
            f"{path.name}: data goes in with textContent"


@pytest.mark.parametrize("path", ["/ui/api/whatif?fail=solo", "/ui/api/traffic",
                                  "/ui/api/members/solo/pods"])
def test_every_data_view_needs_a_token(server: ServerProcess, path: str) -> None:
    r = get(server, path)
    assert r.status_code == 401
    assert r.json()["kind"] == "Status"
    assert get(server, path, token="not-a-token").status_code == 401


def test_what_if_names_what_is_wrong_with_its_question(server: ServerProcess) -> None:
    r = get(server, "/ui/api/whatif", server.token)
    assert r.status_code == 400
    assert "fail=NAME" in r.json()["message"]
    r = get(server, "/ui/api/whatif?fail=atlantis", server.token)
    assert r.status_code == 400
    assert "no such cluster: atlantis" in r.json()["message"]
    r = get(server, "/ui/api/whatif?fail=solo", server.token)
    assert r.status_code == 200
    assert r.json() == {"failed": ["solo"], "workloads": [], "traffic": []}


def test_what_if_is_refused_to_a_token_that_cannot_read_bindings(server: ServerProcess) -> None:
    dns_token = add_token(server.data_dir, "ui-dns", "dns")
    # the server re-reads tokens.json within a second
    r = wait_for_sync(lambda: (x := get(server, "/ui/api/whatif?fail=solo", dns_token))
                      .status_code != 401 and x, timeout=10, what="the new token accepted")
    assert r.status_code == 403
    assert "resourcebindings" in r.json()["message"]


def test_member_views_say_why_they_cannot_answer(server: ServerProcess) -> None:
    r = get(server, "/ui/api/members/solo/pods", server.token)
    assert r.status_code == 503
    assert "publishes no agent endpoint" in r.json()["message"]
    r = get(server, "/ui/api/members/atlantis/pods", server.token)
    assert r.status_code == 404
    r = get(server, "/ui/api/members/solo/secrets", server.token)
    assert r.status_code == 404
    assert "pods, nodes or logs" in r.json()["message"]
    r = get(server, "/ui/api/members/solo/logs/default/p?tail=lots", server.token)
    assert r.status_code == 400
    assert "tail" in r.json()["message"]


def test_traffic_is_n_a_without_gateway_metrics(server: ServerProcess) -> None:
    r = get(server, "/ui/api/traffic", server.token)
    assert r.status_code == 200
    assert r.json()["available"] is False


def test_the_url_carries_the_token_only_in_its_fragment() -> None:
    url = dashboard_url("https://cp.example:8443,https://cp2.example:8443", "a/b+c=")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == (
        "https", "cp.example:8443", "/ui/", "")
    assert parts.fragment == "token=a%2Fb%2Bc%3D"


def test_print_url_prints_one_signed_in_url_and_a_warning(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLOTILLA_SERVER":
           "https://127.0.0.1:1", "FLOTILLA_TOKEN": "s3cret"}
    out = subprocess.run([sys.executable, "-m", "flotilla", "dashboard", "--print-url"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "https://127.0.0.1:1/ui/#token=s3cret\n"
    assert "holds your token" in out.stderr
