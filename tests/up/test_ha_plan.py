"""`flotilla up --ha`'s plan and refusals, without starting anything: etcd missing,
chaos on an `up` without --ha or on a name it does not have, ports kept across starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.up import chaos, ha


def test_missing_etcd_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv(ha.ETCD_ENV, str(tmp_path / "no-etcd"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(ha, "_FALLBACK", str(tmp_path / "usr-bin-etcd"))
    with pytest.raises(ha.HaError, match="etcd-server"):
        ha.etcd_binary()


def test_chaos_on_servers_refused_without_ha() -> None:
    state = {"server": "https://127.0.0.1:8443", "clusters": []}
    with pytest.raises(KeyError, match="not started with --ha"):
        chaos.ha_entry(state, "servers", "server-1")


def test_unknown_name_lists_the_known_ones() -> None:
    state = {"etcd": [{"name": "etcd-1"}, {"name": "etcd-2"}, {"name": "etcd-3"}]}
    with pytest.raises(KeyError, match="etcd: etcd-1, etcd-2, etcd-3"):
        chaos.ha_entry(state, "etcd", "etcd-7")


def test_ports_are_kept_for_the_next_start(tmp_path: Path) -> None:
    first = ha.plan_ha(tmp_path, "127.0.0.1:8443")
    again = ha.plan_ha(tmp_path, "127.0.0.1:8443")
    assert again.members == first.members  # members remember their peers' URLs
    assert [s.name for s in first.servers] == ["server-1", "server-2", "server-3"]
    assert first.servers[0].listen == "127.0.0.1:8443"
    ports = {m.client_port for m in first.members} | {m.peer_port for m in first.members}
    assert len(ports) == 6
    assert first.store_url().startswith("etcd://127.0.0.1:")
    assert first.store_url().endswith("/flotilla")
    assert first.server_list().count("https://") == 3


def test_a_moved_listen_never_collides_with_a_recorded_server(tmp_path: Path) -> None:
    first = ha.plan_ha(tmp_path, "127.0.0.1:8443")
    taken = first.servers[1].listen
    moved = ha.plan_ha(tmp_path, taken)
    assert moved.servers[0].listen == taken
    assert len({s.listen for s in moved.servers}) == 3
