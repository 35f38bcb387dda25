"""TLS by default, seen from outside: curl, the CLI and real servers.

Every server here is a real `flotilla server` (``flotilla init`` first, as a user would)
or a real HTTPS listener that records the ``Authorization`` header it receives.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509

from flotilla.pki import CertificateAuthority, PkiLayout, ensure_server_pair
from tests.api.conftest import start_server
from tests.cli.recorder import Recorder, recorder, recorder_ca
from tests.cli.serverproc import FLOTILLA, ServerProcess, api_only_args, clean_env, flotilla
from tests.helpers import free_port, wait_for_sync

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("tls") / "data", *api_only_args())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    return subprocess.run([CURL, "-sS", "--max-time", "5", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def one_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


@needs_curl
def test_curl_needs_the_ca_and_plain_http_is_refused(server: ServerProcess) -> None:
    path = f"{server.url}/api/v1/configmaps"
    auth = ["-H", f"Authorization: Bearer {server.token}"]
    untrusted = curl(*auth, path)
    assert untrusted.returncode == 60, untrusted  # "SSL certificate problem"
    assert "certificate" in untrusted.stderr
    trusted = curl("--cacert", str(server.ca), "-w", "%{http_code}", "-o", "/dev/null",
                   *auth, path)
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout == "200"
    # The same port spoken to in plain HTTP: closed, never answered (no status line).
    plain = curl("-w", "%{http_code}", *auth, path.replace("https://", "http://"))
    assert plain.returncode != 0
    assert plain.stdout in ("", "000"), plain.stdout
    # The name used must be in the certificate: 127.0.0.1 and localhost are.
    by_name = curl("--cacert", str(server.ca), "-o", "/dev/null", "-w", "%{http_code}",
                   "--resolve", f"localhost:{server.port}:127.0.0.1", *auth,
                   f"https://localhost:{server.port}/readyz")
    assert by_name.stdout == "200", by_name.stderr
    wrong_name = curl("--cacert", str(server.ca), "-o", "/dev/null", "--resolve",
                      f"elsewhere.test:{server.port}:127.0.0.1",
                      f"https://elsewhere.test:{server.port}/readyz")
    assert wrong_name.returncode == 60, wrong_name


def test_the_cli_verifies_with_the_contexts_ca_and_names_a_wrong_one(
        server: ServerProcess, tmp_path: Path) -> None:
    ok = flotilla("get", "cm", env=server.client_env())
    assert ok.returncode == 0, ok.stderr
    other = CertificateAuthority.create("someone-else")
    other.save(tmp_path / "other")
    wrong = tmp_path / "other" / "ca.crt"
    line = one_error(flotilla("get", "cm", "--ca-file", str(wrong), env=server.client_env()))
    assert "certificate verify failed" in line
    assert str(wrong) in line
    assert server.url in line
    # The same through the environment, and with no CA at all (the system's roots).
    line = one_error(flotilla("get", "cm", env=server.client_env(FLOTILLA_CA_FILE=str(wrong))))
    assert "certificate verify failed" in line
    bare = {"FLOTILLA_SERVER": server.url, "FLOTILLA_TOKEN": server.token,
            "FLOTILLA_CONFIG": str(tmp_path / "none.yaml")}
    line = one_error(flotilla("get", "cm", env=clean_env(**bare)))
    assert "certificate verify failed" in line
    assert "system's CAs" in line
    # http:// to the HTTPS port: refused, and the error says why.
    plain = {**bare, "FLOTILLA_SERVER": server.url.replace("https://", "http://")}
    line = one_error(flotilla("get", "cm", env=clean_env(**plain)))
    assert "speak HTTPS" in line
    missing = tmp_path / "absent.crt"
    line = one_error(flotilla("get", "cm", "--ca-file", str(missing),
                              env=server.client_env()))
    assert f"CA file {missing} not found" in line
    assert "--ca-file" in line


def test_init_creates_the_ca_and_a_private_pair_and_a_context(server: ServerProcess) -> None:
    layout = PkiLayout(server.data_dir)
    for key in (layout.ca_key, layout.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(layout.pki_dir.stat().st_mode) == 0o700
    cert = x509.load_pem_x509_certificate(layout.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    listed = flotilla("config", "get-contexts", env=server.client_env())
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:3] == ["*", "default", server.url]


def test_the_server_pair_follows_the_listen_address(tmp_path: Path) -> None:
    data = tmp_path / "data"
    layout = ensure_server_pair(data, "127.0.0.1")
    first = layout.server_cert.read_bytes()
    ensure_server_pair(data, "127.0.0.1")
    assert layout.server_cert.read_bytes() == first, "same address: the pair is kept"
    ensure_server_pair(data, "127.0.0.7")
    moved = x509.load_pem_x509_certificate(layout.server_cert.read_bytes())
    san = moved.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.7" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


@needs_curl
def test_insecure_http_serves_plain_http_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [FLOTILLA, "server", "--data-dir", str(tmp_path / "data"), "--listen",
             f"127.0.0.1:{port}", "--insecure-http", *api_only_args()],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=clean_env())
    try:
        wait_for_sync(lambda: curl(f"http://127.0.0.1:{port}/readyz").returncode == 0, 20,
                      what="the plain-HTTP server")
        assert "PLAIN HTTP" in log.read_text()
        assert f"listening on http://127.0.0.1:{port}" in log.read_text()
        assert curl(f"https://127.0.0.1:{port}/readyz", "-k").returncode != 0
        assert not PkiLayout(tmp_path / "data").server_key.exists()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(15)


# -- contexts: a credential only ever goes to its own context's server -------------------

@pytest.fixture
def two() -> Iterator[tuple[Recorder, Recorder]]:
    with recorder() as a, recorder() as b:
        yield a, b


def write_contexts(path: Path, a: Recorder, b: Recorder, token_dir: Path) -> None:
    token_b = token_dir / "b.token"
    token_b.write_text("token-b\n")
    path.write_text(yaml.safe_dump({"current-context": "a", "contexts": [
        {"name": "a", "server": a.url, "certificate-authority": str(recorder_ca()),
         "token": "token-a"},
        {"name": "b", "server": b.url, "certificate-authority": str(recorder_ca()),
         "token-file": "b.token"},  # relative to the config file, as kubeconfig
    ]}))


def test_a_contexts_token_never_reaches_another_contexts_server(
        tmp_path: Path, two: tuple[Recorder, Recorder]) -> None:
    a, b = two
    config = tmp_path / "config.yaml"
    write_contexts(config, a, b, tmp_path)
    env = clean_env(FLOTILLA_CONFIG=str(config))

    def get(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return flotilla("get", "cm", *args, env={**env, **extra})

    ca = str(recorder_ca())
    assert get().returncode == 0
    assert a.tokens == ["Bearer token-a"]
    assert b.tokens == []
    assert get("--context", "b").returncode == 0
    assert b.tokens == ["Bearer token-b"]
    # Another server named while context a is current: neither a's token nor a's CA
    # goes with it (the CA must be given for it too).
    assert "certificate verify failed" in one_error(get("--server", b.url))
    assert get("--server", b.url, "--ca-file", ca).returncode == 0
    assert b.tokens[-1] is None
    assert get(FLOTILLA_SERVER=b.url, FLOTILLA_CA_FILE=ca).returncode == 0
    assert b.tokens[-1] is None
    switched = flotilla("config", "use-context", "b", env=env)
    assert switched.returncode == 0, switched.stderr
    assert yaml.safe_load(config.read_text())["current-context"] == "b"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert get().returncode == 0
    assert b.tokens[-1] == "Bearer token-b"
    assert get("--server", a.url, "--ca-file", ca).returncode == 0
    assert a.tokens[-1] is None
    assert "Bearer token-b" not in a.tokens
    assert "Bearer token-a" not in b.tokens
    line = one_error(get("--context", "nope"))
    assert "no context 'nope'" in line
    assert "a, b" in line
    assert flotilla("config", "use-context", "nope", env=env).returncode == 1


def test_cert_create_issues_a_private_pair_for_the_hosts(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    r = flotilla("cert", "create", "east-1", "--host", "127.0.11.1", "--data-dir", str(data),
                 "--out", str(out), env=clean_env())
    assert r.returncode == 0, r.stderr
    crt, key = out / "east-1.crt", out / "east-1.key"
    assert r.stdout.split() == [str(crt), str(key)]
    for path in (crt, key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    ca = x509.load_pem_x509_certificate(PkiLayout(data).ca_cert.read_bytes())
    assert cert.issuer == ca.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.11.1"]


def test_an_agent_without_a_pair_refuses_to_serve_its_endpoint_in_the_clear(
        server: ServerProcess, tmp_path: Path) -> None:
    r = flotilla("agent", "--server", server.url, "--token", server.token, "--ca-file",
                 str(server.ca), "--cluster", "bare", "--address", "127.0.251.1",
                 "--state-dir", str(tmp_path / "bare"), env=clean_env(), timeout=60)
    line = one_error(r)
    assert "serves HTTPS" in line
    assert "flotilla cert create bare --host 127.0.251.1" in line


def test_a_tls_server_stops_at_once_with_idle_keep_alive_clients(tmp_path: Path) -> None:
    """An idle pooled connection reads nobody's close_notify; the server must not wait
    for it (uvicorn's graceful timeout is 5 s, long enough for clusters to look dead
    across a restart)."""
    srv = start_server(tmp_path)
    try:
        with httpx.Client(verify=srv.verify, headers=srv.headers()) as client:
            for _ in range(3):
                assert client.get(f"{srv.url}/api/v1/configmaps").status_code == 200
            started = time.monotonic()
            assert srv.stop() == 0
            assert time.monotonic() - started < 3.0
    finally:
        srv.kill()
