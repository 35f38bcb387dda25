"""The CA and the contexts over real sockets: what verifies, what is refused."""

from __future__ import annotations

import asyncio
import ssl
import stat
import subprocess
from pathlib import Path

import pytest

from flotilla.pki import (
    client_ssl_context,
    ensure_ca,
    load_ca,
    server_ssl_context,
    write_private,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_is_created_once_with_a_private_key(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    first = ensure_ca(pki)
    again = ensure_ca(pki)
    assert first.cert_pem == again.cert_pem == load_ca(pki).cert_pem
    assert _mode(pki) == 0o700
    assert _mode(pki / "ca.key") == 0o600
    assert _mode(pki / "ca.crt") == 0o644


def test_write_private_replaces_atomically_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_private(path, b"one")
    write_private(path, b"two")
    assert path.read_bytes() == b"two"
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


async def _serve(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


def _issue_server(tmp_path: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    ca = ensure_ca(tmp_path / "pki")
    pair = ca.issue_server("flotilla-apiserver", hosts)
    cert, key = tmp_path / "pki" / "server.crt", tmp_path / "pki" / "server.key"
    pair.write(cert, key)
    return tmp_path / "pki" / "ca.crt", cert, key


async def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, ["curl", "-sS", "--max-time", "10", *args],
        capture_output=True, text=True, check=False)


async def test_curl_verifies_only_with_the_ca(tmp_path: Path) -> None:
    ca, cert, key = _issue_server(tmp_path, ["127.0.0.1", "localhost"])
    server, port = await _serve(server_ssl_context(cert, key))
    async with server:
        without = await _curl(f"https://127.0.0.1:{port}/")
        assert without.returncode != 0
        assert "certificate" in without.stderr.lower()
        with_ca = await _curl("--cacert", str(ca), f"https://127.0.0.1:{port}/")
        assert with_ca.returncode == 0, with_ca.stderr
        assert with_ca.stdout == "ok"


async def test_a_certificate_is_refused_at_an_address_it_was_not_issued_for(
    tmp_path: Path,
) -> None:
    _, cert, key = _issue_server(tmp_path, ["127.0.0.2"])
    server, port = await _serve(server_ssl_context(cert, key))
    async with server:
        ctx = client_ssl_context(tmp_path / "pki" / "ca.crt")
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            await asyncio.open_connection("127.0.0.1", port, ssl=ctx)


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(tmp_path: Path) -> None:
    ca_path, cert, key = _issue_server(tmp_path, ["127.0.0.1"])
    ca = load_ca(tmp_path / "pki")
    ca.issue_client("flotilla:apiserver", "flotilla:components").write(
        tmp_path / "client.crt", tmp_path / "client.key")
    server, port = await _serve(server_ssl_context(cert, key, client_ca=ca_path))
    async with server:
        anonymous = await _curl("--cacert", str(ca_path), f"https://127.0.0.1:{port}/")
        assert anonymous.returncode != 0
        signed = await _curl("--cacert", str(ca_path), "--cert", str(tmp_path / "client.crt"),
                             "--key", str(tmp_path / "client.key"),
                             f"https://127.0.0.1:{port}/")
        assert signed.returncode == 0, signed.stderr
        assert signed.stdout == "ok"
