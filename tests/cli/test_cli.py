"""The real ``flotilla`` console script, driven as a subprocess against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from flotilla.cli.main import run
from flotilla.client.http import HttpClient
from flotilla.controllers.events import EventRecorder
from flotilla.resources.kinds import KINDS, by_kind
from tests.cli.serverproc import FLOTILLA, ServerProcess, api_only_args, clean_env, flotilla
from tests.helpers import free_port, wait_for_sync
from tests.resources.conftest import SHARED_SAMPLES

T = TypeVar("T")
HERE = Path(__file__).parent
APP = HERE / "fixtures" / "app.yaml"
#: Karmada policies other people wrote (origin and licence: the folder's ORIGIN.md).
KARMADA = SHARED_SAMPLES
EVERY_KIND = HERE.parent / "resources" / "examples" / "every-kind.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("cli") / "state", *api_only_args())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def ok(srv: ServerProcess, *args: str, **kw: Any) -> str:
    """Run a command that must succeed; its stdout."""
    r = flotilla(*args, env=kw.pop("env", None) or srv.client_env(), **kw)
    assert r.returncode == 0, f"flotilla {' '.join(args)} -> {r.returncode}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def fails(srv: ServerProcess | None, *args: str, code: int = 1, **kw: Any) -> str:
    """Run a command that must fail with ``code`` and exactly one ``error:`` line."""
    env = kw.pop("env", None) or (srv.client_env() if srv else clean_env())
    r = flotilla(*args, env=env, **kw)
    assert r.returncode == code, f"flotilla {' '.join(args)} -> {r.returncode}\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


def in_parallel(*calls: Callable[[], T]) -> list[T]:
    """Independent CLI runs side by side: each is mostly interpreter start-up."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: c(), calls))


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ref(doc: dict[str, Any]) -> str:
    return f"{doc['kind'].lower()}/{doc['metadata']['name']}"


def test_apply_creates_then_unchanged_then_configured(server: ServerProcess,
                                                      tmp_path: Path) -> None:
    inputs = sorted(KARMADA.glob("*.yaml"))
    expected = [ref(d) for p in inputs for d in docs(p)] + [ref(d) for d in docs(APP)]
    out = ok(server, "apply", "-f", str(KARMADA), "-f", str(APP))
    assert out.splitlines() == [f"{r} created" for r in expected]
    # The Karmada apiVersion is kept as the user wrote it.
    pp = json.loads(ok(server, "get", "pp", "demo-webapp-even", "-n", "demo-basic", "-o", "json"))
    assert pp["apiVersion"] == "policy.karmada.io/v1alpha1"

    out = ok(server, "apply", "-f", str(KARMADA), "-f", str(APP))
    assert out.splitlines() == [f"{r} unchanged" for r in expected]

    changed = APP.read_text().replace("replicas: 3", "replicas: 5")
    out = ok(server, "apply", "-f", "-", input=changed)
    assert out.splitlines() == ["deployment/web configured", "service/web unchanged",
                                "configmap/web-config unchanged"]
    table = ok(server, "get", "deploy", "web")
    assert table.splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table.splitlines()[1].split()[:2] == ["web", "0/5"]
    assert ok(server, "get", "deploy", "-l", "tier=front", "-o", "name").split() == \
        ["deployment/web"]
    assert ok(server, "get", "deploy", "-l", "tier=back", "-o", "name") == ""


def test_every_kind_get_describe_delete(server: ServerProcess) -> None:
    objects = docs(EVERY_KIND)
    assert {d["kind"] for d in objects} == {k.kind for k in KINDS}, "every kind is covered"
    out = ok(server, "apply", "-f", str(EVERY_KIND))
    assert out.splitlines() == [f"{ref(d)} created" for d in objects]

    all_kinds = ",".join(k.plural for k in KINDS)
    table = ok(server, "get", all_kinds, "-A")
    wide = ok(server, "get", all_kinds, "-A", "-o", "wide")
    for d in objects:
        assert ref(d) in table, ref(d)
        assert ref(d) in wide, ref(d)
    assert "<error>" not in table + wide, "a column function failed"

    want = [(d["kind"], d["metadata"]["name"]) for d in objects]
    for fmt, parse in (("yaml", yaml.safe_load), ("json", json.loads)):
        listed = parse(ok(server, "get", all_kinds, "-A", "-o", fmt))
        assert listed["kind"] == "List"
        got = {(i["kind"], i["metadata"]["name"]): i for i in listed["items"]}
        assert set(want) <= set(got)
        assert all(got[w]["metadata"]["uid"] for w in want)

    by_ns: dict[str, list[dict[str, Any]]] = {}
    for d in objects:
        ns = d["metadata"].get("namespace", "") if by_kind(d["kind"]).namespaced else ""
        by_ns.setdefault(ns, []).append(d)
    for ns, group in by_ns.items():
        described = ok(server, "describe", *(ref(d) for d in group), *(["-n", ns] if ns else []))
        for d in group:
            assert f"Name:         {d['metadata']['name']}\n" in described
            assert f"Kind:         {d['kind']} ({d['apiVersion']})" in described
        assert "c2VjcmV0" not in described, "describe never prints Secret values"

    out = ok(server, "delete", "-f", str(EVERY_KIND))
    assert out.splitlines() == [f"{ref(d)} deleted" for d in objects]
    line = fails(server, "get", ref(objects[0]))
    assert f'clusters "{objects[0]["metadata"]["name"]}" not found' in line
    left = set(ok(server, "get", all_kinds, "-A", "-o", "name").split())
    assert left.isdisjoint(ref(d) for d in objects), left


def test_single_object_yaml_round_trips_through_apply(server: ServerProcess,
                                                      tmp_path: Path) -> None:
    ok(server, "apply", "-f", str(APP))
    dumped = ok(server, "get", "cm", "web-config", "-o", "yaml")
    assert yaml.safe_load(dumped)["data"] == {"GREETING": "hello"}
    path = tmp_path / "dumped.yaml"
    path.write_text(dumped)
    assert ok(server, "apply", "-f", str(path)).strip() == "configmap/web-config unchanged"


def test_delete_by_file_and_not_found(server: ServerProcess) -> None:
    ok(server, "apply", "-f", str(APP), "-n", "gone")
    out = ok(server, "delete", "-f", str(APP), "-n", "gone")
    assert out.splitlines() == ["deployment/web deleted", "service/web deleted",
                                "configmap/web-config deleted"]
    line = fails(server, "delete", "deploy", "web", "-n", "gone")
    assert line == 'error: deployments "web" not found in namespace "gone"'
    assert ok(server, "delete", "deploy/web", "-n", "gone", "--ignore-not-found") == ""


def test_events_and_describe_show_what_controllers_recorded(server: ServerProcess) -> None:
    ok(server, "apply", "-f", str(APP), "-n", "evs")

    async def record() -> None:
        async with HttpClient(server.url, server.token, ca=server.ca) as client:
            deploy = await client.get(by_kind("Deployment"), "evs", "web")
            rec = EventRecorder(client, "scheduler")
            for _ in range(3):
                await rec.record(deploy, "Warning", "FailedScheduling", "0/3 clusters match")
            await rec.record(deploy, "Normal", "Scheduled", "placed on east")

    asyncio.run(record())
    described = ok(server, "describe", "deploy", "web", "-n", "evs")
    events_part = described.split("Events:", 1)[1]
    assert "FailedScheduling" in events_part
    assert "0/3 clusters match" in events_part
    assert "scheduler" in events_part
    listed = ok(server, "events", "-n", "evs", "--for", "deploy/web", "-o", "wide")
    rows = [line.split() for line in listed.splitlines()[1:]]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("Warning", "FailedScheduling", "deployment/web", "3"),
        ("Normal", "Scheduled", "deployment/web", "1"),
    ]
    assert ok(server, "events", "-n", "evs", "--for", "svc/web") == ""
    everywhere = ok(server, "events", "-A")
    assert "evs" in everywhere
    assert "FailedScheduling" in everywhere


def test_bad_input_is_one_line_and_applies_nothing(server: ServerProcess,
                                                   tmp_path: Path) -> None:
    good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first-ok}\ndata: {a: b}\n"
    cases = {
        "syntax.yaml": (good + "---\nkind: [unclosed\n", "syntax.yaml: line"),
        "unknown-kind.yaml": (good + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
                              "document 2"),
        "unknown-field.yaml": (
            good + "---\napiVersion: policy.karmada.io/v1alpha1\nkind: PropagationPolicy\n"
            "metadata: {name: pp}\nspec:\n  resourceSelectors: [{apiVersion: v1, kind: Service}]"
            "\n  bogusField: 1\n", "bogusField"),
        "no-name.yaml": (good + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
                         "document 2"),
    }
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
    lines = in_parallel(*(partial(fails, server, "apply", "-f", str(tmp_path / name))
                          for name in cases))
    for (name, (_, needle)), line in zip(cases.items(), lines, strict=True):
        assert name in line, line
        assert needle in line, line
    assert '"first-ok" not found' in fails(server, "get", "cm", "first-ok"), \
        "nothing was applied"


def test_unusable_files_fail_before_any_call(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nhello\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, needle in ((scalar, "scalar.yaml: document 2: expected an object"),
                         (tmp_path / "missing.yaml", "no such file"),
                         (empty, "no .yaml")):
        # No server is needed (nor reachable: the default address has none here).
        code, out, err = run_inprocess(capsys, "apply", "-f", str(path), "--server",
                                       f"127.0.0.1:{free_port()}")
        assert code == 1
        assert out == ""
        assert needle in err
        assert len(err.strip().splitlines()) == 1


def run_inprocess(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI's own entry function in this process: for checks that need no server,
    where a process start per check would only cost time."""
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("args", "needle"), [
    (("get", "widgets"), "unknown resource type 'widgets'"),
    (("get",), "see 'flotilla get --help'"),
    (("apply",), "-f"),
    (("describe", "deploy"), "NAME"),
    (("events", "--for", "deploy"), "KIND/NAME"),
    (("get", "deploy", "-o", "xml"), "xml"),
    (("get", "deploy/web", "svc"), "KIND/NAME"),
    (("delete", "deploy"), "NAME"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                             needle: str) -> None:
    code, out, err = run_inprocess(capsys, *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    assert needle in err


def test_server_and_token_resolution(server: ServerProcess, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    no_config = {"FLOTILLA_CONFIG": str(tmp_path / "absent.yaml")}
    # Environment only.
    env = clean_env(FLOTILLA_SERVER=server.url, FLOTILLA_TOKEN=server.token,
                    FLOTILLA_CA_FILE=str(server.ca), **no_config)
    ok(server, "get", "cm", env=env)
    # Flags beat the environment, for the server and for the token.
    bad_env = clean_env(FLOTILLA_SERVER=nowhere, FLOTILLA_TOKEN="wrong",
                        FLOTILLA_CA_FILE=str(server.ca), **no_config)
    ok(server, "get", "cm", "--server", server.url, "--token", server.token, env=bad_env)
    line = fails(None, "get", "cm", "--server", server.url, env=bad_env)
    assert "unauthorized" in line
    line = fails(None, "get", "cm", env=bad_env)
    assert nowhere in line
    assert "FLOTILLA_SERVER" in line
    assert "flotilla server" in line
    # ./.flotilla/up.json (what `flotilla up` writes) is used when nothing else is set...
    (tmp_path / ".flotilla").mkdir()
    (tmp_path / ".flotilla" / "up.json").write_text(
        json.dumps({"server": server.url, "token": server.token, "ca": str(server.ca)}))
    ok(server, "get", "cm", env=clean_env(**no_config), cwd=tmp_path)
    # ... and beats the config file, but not the environment.
    ok(server, "get", "cm", env=clean_env(FLOTILLA_CONFIG=str(server.config)), cwd=tmp_path)
    fails(None, "get", "cm", env=clean_env(FLOTILLA_SERVER=nowhere, **no_config), cwd=tmp_path)
    # The config file alone (written by `flotilla init`).
    ok(server, "get", "cm", env=clean_env(FLOTILLA_CONFIG=str(server.config)))


def test_init_writes_a_private_config_once(server: ServerProcess, tmp_path: Path) -> None:
    mode = stat.S_IMODE(os.stat(server.config).st_mode)
    assert mode == 0o600
    config = yaml.safe_load(server.config.read_text())
    assert config["current-context"] == "default"
    assert config["contexts"] == [{"name": "default", "server": server.url,
                                   "certificate-authority": str(server.ca.resolve()),
                                   "token": server.token}]
    line = fails(None, "init", "--data-dir", str(server.data_dir),
                 env=clean_env(FLOTILLA_CONFIG=str(tmp_path / "other.yaml")))
    assert "already has an admin token" in line
    assert not (tmp_path / "other.yaml").exists()


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    commands = ("init", "server", "apply", "get", "describe", "delete", "events")
    code, top, _ = run_inprocess(capsys, "--help")
    assert code == 0
    for c in commands:
        assert c in top
        code, text, _ = run_inprocess(capsys, c, "--help")
        assert code == 0
        assert "Examples:" in text, c
        assert f"flotilla {c}" in text, c
    # And the installed console script is wired to the same entry point.
    assert "Examples:" in flotilla("get", "--help", env=clean_env()).stdout


def test_get_watch_prints_changes_until_interrupted(server: ServerProcess) -> None:
    cm_kind = by_kind("ConfigMap")
    async def change(action: str, name: str) -> None:
        async with HttpClient(server.url, server.token, ca=server.ca) as client:
            if action == "create":
                await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": name, "namespace": "watched"}})
            else:
                await client.delete(cm_kind, "watched", name)

    asyncio.run(change("create", "w0"))
    proc = subprocess.Popen([FLOTILLA, "get", "cm", "-n", "watched", "--watch", "-o", "name"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=server.client_env(), start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        # The listed object shows the list is done; the watch follows from its version,
        # so whatever changes after this line must appear as a change.
        wait_for_sync(lambda: "configmap/w0\n" in lines, timeout=20, what="the list")
        asyncio.run(change("create", "w1"))
        wait_for_sync(lambda: "configmap/w1 added\n" in lines, timeout=20, what="added line")
        asyncio.run(change("delete", "w1"))
        wait_for_sync(lambda: "configmap/w1 deleted\n" in lines, timeout=20,
                      what="deleted line")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        reader.join(timeout=10)
    assert proc.returncode == 130
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
