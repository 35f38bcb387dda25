"""Tokens: created once, printed once, stored only as hashes, checked in constant time."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import httpx

from flotilla.api.auth import TOKENS_FILE, Authenticator, add_token, ensure_admin_token
from tests.api.conftest import ServerProcess
from tests.helpers import wait_for_sync


def test_admin_token_is_created_once_and_stored_hashed(tmp_path: Path) -> None:
    token = ensure_admin_token(tmp_path)
    assert token is not None
    assert len(token) >= 43
    assert ensure_admin_token(tmp_path) is None
    path = tmp_path / TOKENS_FILE
    text = path.read_text()
    assert token not in text
    record = json.loads(text)["tokens"][0]
    assert {k: record[k] for k in ("name", "role", "sha256")} == {
        "name": "admin", "role": "admin", "sha256": hashlib.sha256(token.encode()).hexdigest()}
    assert token not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = Authenticator.from_data_dir(tmp_path)
    principal = auth.authenticate(f"Bearer {token}")
    assert principal is not None
    assert principal.role == "admin"
    assert auth.authenticate(f"Bearer {token}x") is None
    assert auth.authenticate(token) is None
    assert auth.authenticate(None) is None


def test_first_start_prints_the_token_once_and_new_tokens_apply(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", create_token=False)
    try:
        srv.start()
        assert srv.token, srv.stdout_lines
        ok = httpx.get(f"{srv.url}/api/v1/configmaps", headers=srv.headers(), timeout=5,
                       verify=srv.verify)
        assert ok.status_code == 200
        assert srv.stop() == 0
        printed = srv.token
        srv.stdout_lines.clear()
        srv.start()
        assert not any(b"Admin token" in line for line in srv.stdout_lines)
        assert srv.token == printed

        extra = add_token(srv.data_dir, "ci")  # e.g. by `flotilla up` while serving

        def accepted() -> bool:
            r = httpx.get(f"{srv.url}/api/v1/configmaps", verify=srv.verify,
                          headers={"Authorization": f"Bearer {extra}"}, timeout=5)
            return r.status_code == 200
        wait_for_sync(accepted, timeout=10, what="the new token to be accepted")
    finally:
        srv.stop()
        srv.kill()

