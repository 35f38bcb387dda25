"""Secrets at rest through a real `flotilla server`: sealed in its SQLite file, plain to
its clients, readable after a restart, and a moved ciphertext is a clear error."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.pki.layout import PkiLayout
from flotilla.store.sqlite.schema import DB_FILE
from tests.cli.serverproc import ServerProcess, api_only_args

VALUE = "s3cret-at-rest-0123456789"
SECRETS = "/api/v1/namespaces/default/secrets"
WORKS = "/apis/work.flotilla.io/v1alpha1/namespaces/default/works"


def secret(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"password": base64.b64encode(value.encode()).decode()},
            "stringData": {"plain": value}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", *api_only_args())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10,
                        headers={"Authorization": f"Bearer {server.token}"})


def on_disk(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob(f"{DB_FILE}*")))


def holds_value(obj: dict[str, Any], value: str) -> bool:
    text = json.dumps(obj)
    return value in text or base64.b64encode(value.encode()).decode() in text


def test_secrets_are_encrypted_in_the_file_and_intact_through_the_api(
        server: ServerProcess) -> None:
    with client(server) as api:
        assert api.post(SECRETS, json=secret("db", VALUE)).status_code == 201
        work = {"apiVersion": "work.flotilla.io/v1alpha1", "kind": "Work",
                "metadata": {"name": "shop", "namespace": "default"},
                "spec": {"workload": {"manifests": [secret("inner", VALUE + "-w")]}}}
        created = api.post(WORKS, json=work)
        assert created.status_code == 201, created.text
        with api.stream("GET", SECRETS, params={"watch": "1", "resourceVersion": "0"}) as w:
            first = json.loads(next(w.iter_lines()))
        assert first["type"] == "ADDED"
        assert holds_value(first["object"], VALUE)

    raw = on_disk(server.data_dir)
    for value in (VALUE, VALUE + "-w"):
        assert value.encode() not in raw
        assert base64.b64encode(value.encode()) not in raw
    assert b"k8s:enc:aesgcm:v1:key1:" in raw
    key = PkiLayout(server.data_dir).secrets_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    server.restart()
    with client(server) as api:
        got = api.get(f"{SECRETS}/db").json()
        assert holds_value(got, VALUE)
        assert got["metadata"]["name"] == "db"
        shop = api.get(f"{WORKS}/shop").json()
        assert holds_value(shop["spec"]["workload"]["manifests"][0], VALUE + "-w")


def test_a_ciphertext_moved_to_another_secret_is_refused_clearly(
        server: ServerProcess) -> None:
    with client(server) as api:
        for name, value in (("source", VALUE), ("target", "other-value-42")):
            assert api.post(SECRETS, json=secret(name, value)).status_code == 201
    server.stop()
    with sqlite3.connect(server.data_dir / DB_FILE) as db:
        [(text,)] = db.execute("SELECT object FROM objects WHERE name = 'source'")
        db.execute("UPDATE objects SET object = ? WHERE name = 'target'",
                   (text.replace('"name":"source"', '"name":"target"'),))
    server.start()
    with client(server) as api:
        moved = api.get(f"{SECRETS}/target")
        assert moved.status_code == 500
        assert "secrets/default/target: cannot decrypt" in moved.json()["message"]
        assert holds_value(api.get(f"{SECRETS}/source").json(), VALUE)  # still serving
