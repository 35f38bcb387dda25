"""Schemathesis over the server's own OpenAPI document, against a real server process,
as the admin: every operation, a bounded number of generated requests each (valid and
invalid bodies, paths and query parameters), and not one answer may be a 5xx.

Checks per answer: no 5xx, the status code is one the document declares for the
operation, and the content type is one it declares. (Body conformance to the response
schema is not asserted: the document describes the models' validation schemas, and the
server's answers add read-only fields such as metadata.uid.)

Hermetic: an explicit `schemathesis.Config()` (no schemathesis.toml, no environment),
a fixed seed, no Hypothesis example database on disk. About a minute in all
(``FUZZ_EXAMPLES`` per operation; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from flotilla.api.openapi import openapi_document
from tests.api.conftest import ServerProcess, start_server

FUZZ_EXAMPLES = 5
SEED = 20261203

#: Every answer, for the summary printed at the end of the module (and in the docs).
_SEEN: dict[str, Any] = {"operations": set(), "calls": 0, "server_errors": [],
                         "started": None}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("fuzz"))
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()
        if _SEEN["started"] is not None:
            print(f"\nfuzz: {len(_SEEN['operations'])} operations, {_SEEN['calls']} requests, "
                  f"{time.monotonic() - _SEEN['started']:.1f} s, "
                  f"{len(_SEEN['server_errors'])} responses >= 500")


def test_served_document_is_the_fuzzed_one(fuzz_server: ServerProcess) -> None:
    """What is fuzzed is exactly what the server serves at /openapi.json."""
    served = httpx.get(f"{fuzz_server.url}/openapi.json", verify=fuzz_server.verify).json()
    assert served == json.loads(json.dumps(openapi_document()))
    assert len(list(schema.get_all_operations())) >= 100


def test_document_is_valid_openapi() -> None:
    """The document passes the OpenAPI meta-schema of the version it declares (as 3.0 it
    did not: pydantic's ``{"type": "null"}`` and numeric ``exclusiveMinimum`` are draft
    2020-12), and every operation's bodies can be generated from it (a 3.0 reading of
    a ``exclusiveMinimum: 0`` (then in the autoscaler's model) made it UnsupportedSchema)."""
    schema.validate()
    for result in schema.get_all_operations():
        operation = result.ok()
        operation.as_strategy()  # raises on a body schema that cannot be generated


# Loaded at collection (schemathesis' lazy fixture loader does not work with pytest 9):
# the document is built by the server's own code, and the test above checks that the
# running server serves the same one.
schema = schemathesis.openapi.from_dict(openapi_document(), config=schemathesis.Config(seed=SEED))
# The coverage phase ignores max_examples (dozens of cases per operation): too slow here.
schema.config.phases.coverage.enabled = False
# The reproduction must carry the real (throwaway, per-run) admin token to be runnable.
schema.config.output.sanitization.enabled = False


def curl_for(case: schemathesis.Case, srv: ServerProcess) -> str:
    """A curl command line that sends exactly ``case`` to ``srv`` (token and CA included)."""
    curl = case.as_curl_command(headers=srv.headers(), base_url=srv.url)
    return curl.replace("curl ", f"curl --cacert {srv.ca} ", 1)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, fuzz_server: ServerProcess) -> None:
    if _SEEN["started"] is None:
        _SEEN["started"] = time.monotonic()
    if case.query:  # a watch never ends: the stream is tested in test_watch.py
        case.query.pop("watch", None)
    response = case.call(base_url=fuzz_server.url, headers=fuzz_server.headers(),
                         verify=str(fuzz_server.ca), timeout=30)
    _SEEN["operations"].add(f"{case.method} {case.path}")
    _SEEN["calls"] += 1
    curl = curl_for(case, fuzz_server)
    if response.status_code >= 500:
        _SEEN["server_errors"].append(curl)
    assert response.status_code < 500, (
        f"{response.status_code} {response.text[:500]}\nreproduce: {curl}")
    try:
        case.validate_response(response, checks=[status_code_conformance,
                                                 content_type_conformance])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nreproduce: {curl}") from None


def test_the_printed_reproduction_runs_with_curl(fuzz_server: ServerProcess) -> None:
    """What a failure prints is a working command: real curl creates the object."""
    create = schema["/api/v1/namespaces/{namespace}/configmaps"]["POST"].Case(
        path_parameters={"namespace": "default"}, media_type="application/json",
        body={"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "from-curl"}, "data": {"k": "v"}})
    command = curl_for(create, fuzz_server) + " -s -o /dev/null -w %{http_code}"
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.stdout == "201", (command, done.stdout, done.stderr)
    got = httpx.get(f"{fuzz_server.url}/api/v1/namespaces/default/configmaps/from-curl",
                    headers=fuzz_server.headers(), verify=fuzz_server.verify, timeout=10)
    assert got.json()["data"] == {"k": "v"}


def test_server_healthy_after_fuzz(fuzz_server: ServerProcess) -> None:
    """Read-only: after every fuzzed request the server still answers health and a list."""
    if _SEEN["calls"] == 0:  # selected alone: there was no fuzzing to survive
        pytest.skip("checks the server after test_no_server_errors; run the module")
    with httpx.Client(base_url=fuzz_server.url, headers=fuzz_server.headers(),
                      verify=fuzz_server.verify, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        listed = http.get("/api/v1/configmaps")
        assert listed.status_code == 200
        assert isinstance(listed.json()["items"], list)
