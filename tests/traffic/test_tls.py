"""HTTPS at the gateway: certificates from kubernetes.io/tls Secrets, one per host by SNI,
rotated through the API under load without a failed request, bad pairs kept out, and
plain HTTP redirected. The gateway is the real ``flotilla gateway`` process fed by a real
API server; clients are curl and real TLS connections."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.client.http import HttpClient
from flotilla.pki.authority import CertificateAuthority, IssuedPair
from flotilla.resources.kinds import by_kind
from flotilla.traffic.model import build_model
from flotilla.traffic.tls import CertificateError, Certificates, check_pair
from tests.api.conftest import ServerProcess, start_server
from tests.helpers import free_port, wait_for

from .conftest import StartBackend
from .test_config_source import add_cluster, add_slice

SHOP, BLOG = "shop.example.test", "blog.example.test"


@dataclass
class GatewayProcess:
    proc: asyncio.subprocess.Process
    port: int
    tls_port: int
    admin: int

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient() as c:
            text = (await c.get(f"http://127.0.0.1:{self.admin}/metrics")).text
        return {k: float(v) for k, _, v in (line.rpartition(" ") for line in text.splitlines()
                                             if line and not line.startswith("#"))}


def secret(name: str, pair: IssuedPair, kind: str = "kubernetes.io/tls") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": "default"},
            "data": {"tls.crt": base64.b64encode(pair.cert_pem).decode(),
                     "tls.key": base64.b64encode(pair.key_pem).decode()}}


def tls_policy(name: str, host: str, secret_name: str, redirect: bool = False,
               service: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"service": service, "hosts": [host],
                     "tls": {"secretName": secret_name, "redirectHTTP": redirect}}}


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True,
                          text=True, timeout=15)


def https(gw: GatewayProcess, host: str, ca: Path, path: str = "/") -> \
        subprocess.CompletedProcess[str]:
    """curl resolving ``host`` to the gateway, verifying against ``ca`` only."""
    return curl("--resolve", f"{host}:{gw.tls_port}:127.0.0.1", "--cacert", str(ca),
                "-i", f"https://{host}:{gw.tls_port}{path}")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(api: ServerProcess) -> AsyncIterator[HttpClient]:
    async with HttpClient(api.url, api.token) as c:
        yield c


@pytest.fixture
async def gateway_process(api: ServerProcess, tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    port, tls_port, admin = free_port(), free_port(), free_port()
    log = (tmp_path / "gateway.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("flotilla")), "gateway", "--server", api.url,
        "--token", api.token, "--listen", f"127.0.0.1:{port}",
        "--tls-listen", f"127.0.0.1:{tls_port}", "--admin-listen", f"127.0.0.1:{admin}",
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        yield GatewayProcess(proc, port, tls_port, admin)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def write_ca(tmp_path: Path, name: str, ca: CertificateAuthority) -> Path:
    path = tmp_path / f"{name}.crt"
    path.write_bytes(ca.cert_pem)
    return path


async def backend_for(client: HttpClient, start_backend: StartBackend) -> None:
    east = await start_backend("east", region="cn-east")
    await add_cluster(client, "east", "cn-east")
    await add_slice(client, "east", "cn-east", east.port)


async def test_sni_picks_each_hosts_certificate_and_plain_http_redirects(
        client: HttpClient, gateway_process: GatewayProcess, start_backend: StartBackend,
        tmp_path: Path) -> None:
    gw = gateway_process
    await backend_for(client, start_backend)
    # two CAs, so a certificate verifies against its own CA only: curl succeeding with
    # --cacert of shop's CA proves shop's certificate was the one served
    shop_ca, blog_ca = CertificateAuthority.create("shop-ca"), CertificateAuthority.create(
        "blog-ca")
    shop_ca_file, blog_ca_file = write_ca(tmp_path, "shop", shop_ca), write_ca(
        tmp_path, "blog", blog_ca)
    await client.create(secret("shop-tls", shop_ca.issue_server("shop", [SHOP])))
    await client.create(secret("blog-tls", blog_ca.issue_server("blog", [BLOG])))
    await client.create(tls_policy("shop", SHOP, "shop-tls", redirect=True))
    await client.create(tls_policy("blog", BLOG, "blog-tls"))

    async def serves(host: str, ca: Path) -> bool:
        r = await asyncio.to_thread(https, gw, host, ca)
        return r.returncode == 0 and "x-backend: east" in r.stdout

    await wait_for(lambda: serves(SHOP, shop_ca_file), timeout=20, what="https for shop")
    await wait_for(lambda: serves(BLOG, blog_ca_file), timeout=10, what="https for blog")
    r = https(gw, SHOP, shop_ca_file)
    assert "x-seen-x-forwarded-proto: https" in r.stdout, r.stdout
    # the other host's CA does not verify: each host got its own certificate
    wrong = https(gw, SHOP, blog_ca_file)
    assert wrong.returncode == 60, (wrong.returncode, wrong.stderr)  # peer cert not trusted
    assert https(gw, BLOG, shop_ca_file).returncode == 60
    # a name no policy routes gets no certificate at all
    unknown = curl("--resolve", f"other.example.test:{gw.tls_port}:127.0.0.1", "-k",
                   f"https://other.example.test:{gw.tls_port}/")
    assert unknown.returncode == 35, (unknown.returncode, unknown.stderr)  # handshake failed

    # redirectHTTP: plain HTTP for shop is sent to https, same host and target
    plain = curl("-i", "-H", f"Host: {SHOP}:{gw.port}", f"http://127.0.0.1:{gw.port}/a/b?c=1")
    assert plain.stdout.startswith("HTTP/1.1 308"), plain.stdout
    assert f"location: https://{SHOP}:{gw.tls_port}/a/b?c=1\n" in plain.stdout.lower()
    followed = curl("-L", "--resolve", f"{SHOP}:{gw.port}:127.0.0.1", "--resolve",
                    f"{SHOP}:{gw.tls_port}:127.0.0.1", "--cacert", str(shop_ca_file),
                    f"http://{SHOP}:{gw.port}/after-redirect")
    assert followed.stdout == "east GET /after-redirect\n", followed
    # blog did not ask for the redirect: plain HTTP still served
    blog_plain = curl("-H", f"Host: {BLOG}", f"http://127.0.0.1:{gw.port}/")
    assert blog_plain.stdout == "east GET /\n", blog_plain


async def tls_get(port: int, host: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    """One request on a new TLS connection; (status, DER of the certificate served)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname=host)
    try:
        obj = writer.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True)
        status = await request(reader, writer, host)
        return status, der
    finally:
        writer.close()


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  host: str) -> int:
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(head.split()[1])


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


async def test_certificate_rotates_under_load_without_a_failed_request(
        client: HttpClient, gateway_process: GatewayProcess, start_backend: StartBackend,
        tmp_path: Path) -> None:
    gw = gateway_process
    await backend_for(client, start_backend)
    old_ca, new_ca = CertificateAuthority.create("old-ca"), CertificateAuthority.create(
        "new-ca")
    old, new = old_ca.issue_server("shop", [SHOP]), new_ca.issue_server("shop", [SHOP])
    both = tmp_path / "both.crt"
    both.write_bytes(old_ca.cert_pem + new_ca.cert_pem)
    ctx = ssl.create_default_context(cafile=str(both))
    await client.create(secret("shop-tls", old))
    await client.create(tls_policy("shop", SHOP, "shop-tls"))

    async def serving(pair: IssuedPair) -> bool:
        try:
            status, cert = await tls_get(gw.tls_port, SHOP, ctx)
        except (OSError, ssl.SSLError):
            return False
        return status == 200 and cert == der(pair.cert_pem)

    await wait_for(lambda: serving(old), timeout=20, what="the first certificate")
    # a keep-alive connection opened before the rotation must survive it
    kept_r, kept_w = await asyncio.open_connection("127.0.0.1", gw.tls_port, ssl=ctx,
                                                   server_hostname=SHOP)
    assert await request(kept_r, kept_w, SHOP) == 200

    results: list[int | str] = []
    served: set[bytes] = set()
    rotated = asyncio.Event()

    async def load(worker: int) -> None:
        # bounded: each worker makes at most 300 new-connection requests, and stops
        # early once it has seen the new certificate for a while
        after = 0
        for _ in range(300):
            try:
                status, cert = await tls_get(gw.tls_port, SHOP, ctx)
                results.append(status)
                served.add(cert)
                if rotated.is_set() and cert == der(new.cert_pem):
                    after += 1
                    if after >= 10:
                        return
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError) as e:
                results.append(f"{type(e).__name__}: {e}")

    workers = [asyncio.create_task(load(i)) for i in range(4)]
    await wait_for(lambda: _async(len(results) >= 40), timeout=20, what="load to run")
    obj = await client.get(by_kind("Secret"), "default", "shop-tls")
    obj["data"] = secret("shop-tls", new)["data"]
    await client.update(obj)
    rotated.set()
    await asyncio.gather(*workers)

    failed = [r for r in results if r != 200]
    assert not failed, failed[:5]
    assert len(results) >= 80
    assert served == {der(old.cert_pem), der(new.cert_pem)}, "both served, in turn"
    await wait_for(lambda: serving(new), timeout=5, what="the new certificate afterwards")
    # the connection from before the rotation was not dropped
    assert await request(kept_r, kept_w, SHOP) == 200
    kept_w.close()
    before = (await gw.metrics()).get(
        'flotilla_gateway_tls_certificate_errors_total{secret="default/shop-tls"}', 0.0)

    # a malformed certificate is refused: the last good one stays and it is reported
    obj = await client.get(by_kind("Secret"), "default", "shop-tls")
    obj["data"]["tls.crt"] = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnope\n"
                                              b"-----END CERTIFICATE-----\n").decode()
    await client.update(obj)

    async def reported() -> bool:
        m = await gw.metrics()
        return m.get('flotilla_gateway_tls_certificate_errors_total{secret="default/shop-tls"}',
                     0.0) > before

    await wait_for(reported, timeout=10, what="the bad certificate to be reported")
    assert await serving(new), "the last good certificate is still served"
    async with httpx.AsyncClient() as c:
        routes = (await c.get(f"http://127.0.0.1:{gw.admin}/routes")).json()
    assert any("default/shop-tls" in e and "tls.crt is not a PEM certificate" in e
               and "last good" in e for e in routes["errors"]), routes["errors"]


async def _async(value: bool) -> bool:
    return value


# --- checks of a pair and of the Secret holding it (no process needed) -------------------


def test_pair_problems_are_named() -> None:
    ca = CertificateAuthority.create()
    a, b = ca.issue_server("a", ["a.test"]), ca.issue_server("b", ["b.test"])
    check_pair(a.cert_pem, a.key_pem)
    with pytest.raises(CertificateError, match=r"tls\.crt is not a PEM certificate"):
        check_pair(b"garbage", a.key_pem)
    with pytest.raises(CertificateError, match=r"tls\.key is not a PEM private key"):
        check_pair(a.cert_pem, b"garbage")
    with pytest.raises(CertificateError, match="does not match"):
        check_pair(a.cert_pem, b.key_pem)


def test_secret_problems_are_reported_and_keep_the_last_good_certificate() -> None:
    ca = CertificateAuthority.create()
    pair = ca.issue_server("shop", [SHOP])
    policy = tls_policy("shop", SHOP, "shop-tls")

    def model(*secrets: dict[str, Any]) -> Any:
        return build_model([policy], [], [], secrets)

    certs = Certificates()
    assert certs.apply(model(secret("shop-tls", pair)).certificates) == []
    good = certs.hosts[SHOP]
    for secrets, problem in [
        ((), "Secret default/shop-tls does not exist"),
        ((secret("shop-tls", pair, kind="Opaque"),),
         "has type 'Opaque', expected 'kubernetes.io/tls'"),
        (({**secret("shop-tls", pair), "data": {"tls.crt": secret("shop-tls", pair)["data"][
            "tls.crt"]}},), "has no data 'tls.key'"),
        (({**secret("shop-tls", pair), "data": {"tls.crt": "%%", "tls.key": "x"}},),
         "data 'tls.crt' is not base64"),
        ((secret("shop-tls", IssuedPair(pair.cert_pem, b"junk")),),
         "tls.key is not a PEM private key"),
    ]:
        built = model(*secrets)
        errors = certs.apply(built.certificates)
        assert len(errors) == 1, errors
        assert problem in errors[0], (problem, errors)
        assert "serving its last good certificate" in errors[0]
        assert certs.hosts[SHOP] is good
        if "PEM" not in problem:  # the shape problems are in the model's errors too
            assert any(problem in e for e in built.errors), built.errors
    # a host that never had a good certificate gets none
    fresh = Certificates()
    assert fresh.apply(model().certificates)
    assert SHOP not in fresh.hosts


def test_tls_block_validation() -> None:
    from pydantic import ValidationError

    from flotilla.resources.models.traffic import TrafficPolicySpec

    ok = TrafficPolicySpec.model_validate(
        {"service": "s", "hosts": [SHOP], "tls": {"secretName": "shop-tls",
                                                  "redirectHTTP": True}})
    assert ok.tls is not None
    assert ok.tls.redirect_http
    for tls, where in [({}, "secretName"), ({"secretName": "Not_A_Name"}, "secretName"),
                       ({"secretName": "x", "redirect": True}, "redirect")]:
        with pytest.raises(ValidationError, match=where):
            TrafficPolicySpec.model_validate({"service": "s", "hosts": [SHOP], "tls": tls})


def test_flotilla_up_starts_the_https_listener(tmp_path: Path) -> None:
    from flotilla.up.supervisor import Up, UpOptions
    from flotilla.up.topology import default_clusters

    def gateway_argv(**kw: Any) -> list[str]:
        commands = Up(UpOptions(tmp_path, default_clusters(1), **kw))._edge_commands()
        return next(argv for name, _, argv in commands if name == "gateway")

    argv = gateway_argv()
    assert argv[argv.index("--tls-listen") + 1] == "127.0.0.1:8444"
    assert "--tls-listen" not in gateway_argv(gateway_tls_listen=None)


async def test_wildcard_certificate_and_redirect_of_a_request_with_a_body(
        start_backend: StartBackend, tmp_path: Path) -> None:
    """In-process gateway on a static model: a ``*.example.test`` policy's certificate
    serves its subdomains by SNI; a client sending no SNI gets none; a POST with a body is
    redirected and the connection closed (its body is never read)."""
    from flotilla.traffic.gateway import Gateway
    from flotilla.traffic.model import CertSource, Policy, Tls, static_model

    b = await start_backend("east")
    ca = CertificateAuthority.create()
    pair = ca.issue_server("wild", ["*.example.test"])
    ca_file = write_ca(tmp_path, "ca", ca)
    policy = Policy("wild", "default", "shop", ("*.example.test",),
                    tls=Tls("default/wild-tls", redirect_http=True))
    model = static_model([(policy, [b.endpoint])], {"*.example.test": CertSource(
        "default/wild-tls", pair.cert_pem, pair.key_pem)})
    gw = Gateway(model, listen="127.0.0.1:0", tls_listen="127.0.0.1:0")
    await gw.start()
    try:
        ok = await asyncio.to_thread(
            curl, "--resolve", f"a.example.test:{gw.tls_port}:127.0.0.1", "--cacert",
            str(ca_file), f"https://a.example.test:{gw.tls_port}/x")
        assert ok.stdout == "east GET /x\n", ok
        no_sni = await asyncio.to_thread(curl, "-k", f"https://127.0.0.1:{gw.tls_port}/")
        assert no_sni.returncode == 35, no_sni
        post = await asyncio.to_thread(
            curl, "-i", "-H", "Host: a.example.test", "--data-binary", "x" * 1000,
            f"http://127.0.0.1:{gw.port}/form")
        assert post.stdout.startswith("HTTP/1.1 308"), post.stdout
        assert f"location: https://a.example.test:{gw.tls_port}/form\n" in post.stdout.lower()
        assert "connection: close" in post.stdout.lower()
    finally:
        await gw.stop()
