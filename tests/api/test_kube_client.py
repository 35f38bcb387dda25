"""The official Kubernetes Python client (``kubernetes``) creates, lists, patches
(strategic, JSON, merge, server-side apply), scales and watches through Flotilla's API,
unmodified: what a Kubernetes-native script or tool does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.api.conftest import ServerProcess

NS = "kc"


@pytest.fixture
def api(server: ServerProcess) -> Iterator[client.ApiClient]:
    config = client.Configuration(host=server.url)
    config.api_key = {"authorization": server.token}
    config.api_key_prefix = {"authorization": "Bearer"}
    config.ssl_ca_cert = str(server.ca)
    with client.ApiClient(config) as api_client:
        yield api_client


def _deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": "shop:1"}]}}},
    }


def test_create_list_patch_and_scale(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(NS, _deployment("pyc"))
    assert created.metadata.uid
    names = [d.metadata.name for d in apps.list_namespaced_deployment(NS).items]
    assert "pyc" in names
    # A dict body goes as a strategic-merge patch: containers merge by name.
    patched = apps.patch_namespaced_deployment("pyc", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "envoy:1"}]}}}})
    assert sorted(c.name for c in patched.spec.template.spec.containers) == ["sidecar", "web"]
    # A list body goes as a JSON patch.
    patched = apps.patch_namespaced_deployment(
        "pyc", NS, [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert patched.spec.replicas == 4
    scale = apps.patch_namespaced_deployment_scale("pyc", NS, {"spec": {"replicas": 6}})
    assert scale.spec.replicas == 6
    assert apps.read_namespaced_deployment("pyc", NS).spec.replicas == 6


def test_server_side_apply_and_its_conflict(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    body = _deployment("pyssa")
    applied = apps.patch_namespaced_deployment(
        "pyssa", NS, body, field_manager="ci", _content_type="application/apply-patch+yaml")
    assert [m.manager for m in applied.metadata.managed_fields] == ["ci"]
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pyssa"},
             "spec": {"replicas": 5}}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("pyssa", NS, other, field_manager="hpa",
                                         _content_type="application/apply-patch+yaml")
    assert err.value.status == 409
    assert "FieldManagerConflict" in err.value.body
    forced = apps.patch_namespaced_deployment("pyssa", NS, other, field_manager="hpa",
                                              force=True,
                                              _content_type="application/apply-patch+yaml")
    assert forced.spec.replicas == 5


def test_watch_sees_a_change(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "pyw"},
                                           "data": {"a": "1"}})
    listing = core.list_namespaced_config_map(NS)
    core.patch_namespaced_config_map("pyw", NS, {"data": {"a": "2"}})
    seen: list[str] = []
    deadline = time.monotonic() + 20
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_config_map, NS,
                               resource_version=listing.metadata.resource_version,
                               _request_timeout=20):
        obj = event["object"]
        if obj.metadata.name == "pyw":
            seen.append(f"{event['type']} {obj.data['a']}")
        if "MODIFIED 2" in seen or time.monotonic() > deadline:
            stream.stop()
    assert "MODIFIED 2" in seen
