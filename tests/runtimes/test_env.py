"""Container environment: injected variables, $(VAR) expansion, valueFrom."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.helpers import wait_for
from tests.runtimes.conftest import MakeCluster, deployment, http_get, pods_of, ready_pods


def _objects() -> list[dict[str, Any]]:
    config = {"kind": "ConfigMap", "metadata": {"name": "settings"},
              "data": {"greeting": "hello"}}
    secret = {"kind": "Secret", "metadata": {"name": "creds"},
              "data": {"password": base64.b64encode(b"s3cret").decode()}}
    env: list[dict[str, Any]] = [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                                "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                             "key": "password"}}},
        {"name": "OPTIONAL", "valueFrom": {"configMapKeyRef": {
            "name": "settings", "key": "absent", "optional": True}}},
        {"name": "MESSAGE", "value": "$(GREETING) $(POD_NAME) $$(GREETING) $(UNDEFINED)"},
    ]
    app = deployment("envy", 1, env=env, args=("--who=$(MESSAGE)", "--port=$(PORT_HTTP)"))
    app["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
        {"secretRef": {"name": "absent", "optional": True}}]
    return [config, secret, app]


async def test_env_expansion_value_from_and_injected_variables(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply(_objects())
    [pod] = await ready_pods(rt, "envy", 1)
    port = pod.containers[0].ports["http"]
    seen = json.loads(await http_get(f"http://127.0.0.1:{port}/env"))
    env = seen["env"]
    assert env["GREETING"] == "hello"
    assert env["PASSWORD"] == "s3cret"
    assert env["CFG_greeting"] == "hello"
    assert "OPTIONAL" not in env
    assert env["MESSAGE"] == f"hello {pod.name} $(GREETING) $(UNDEFINED)"
    assert seen["argv"] == [f"--who={env['MESSAGE']}", f"--port={port}"]
    assert env["PORT"] == env["PORT_HTTP"] == str(port)
    assert (env["POD_NAMESPACE"], env["NODE_NAME"]) == ("default", pod.node)
    assert (env["CLUSTER_NAME"], env["CLUSTER_REGION"], env["CLUSTER_ZONE"]) == (
        rt.name, "eu-west", "eu-west-1a")


async def test_missing_key_keeps_the_container_from_starting(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    objects = _objects()
    objects[0]["data"] = {}
    await rt.apply(objects)

    async def blocked() -> bool:
        pods = pods_of(rt, "envy")
        return bool(pods) and pods[0].status == "CreateContainerConfigError"
    await wait_for(blocked, timeout=10, what="CreateContainerConfigError")
    [pod] = pods_of(rt, "envy")
    assert "couldn't find key greeting in configmap default/settings" in pod.message
    assert pod.containers[0].pid is None
    await rt.apply(_objects())  # the key appears: the pod starts on its next attempt
    await ready_pods(rt, "envy", 1)
