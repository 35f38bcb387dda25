"""The real ``kubectl`` (1.32) writing through a real ``flotilla server``: client-side
and server-side apply (unchanged, configured, conflicts between field managers,
``--force-conflicts``), edit, the three patch types, label, annotate, scale,
``--validate=strict``, explain, the protobuf answer, and the same stored objects as
``flotilla apply`` for the shop example and every applicable vendored Karmada sample.

Each test works in a namespace of its own; kubectl's kubeconfig and its discovery cache
live in the test's tmp_path (HOME), the token only in that 0600 file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flotilla.resources.kinds import by_kind
from tests.cli.serverproc import ServerProcess, api_only_args, flotilla
from tests.resources.conftest import KARMADA_FILES, SHARED_SAMPLES

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop" / "shop.yaml"
#: Karmada's samples that apply unchanged (tests/resources/test_karmada_compat.py).
KARMADA_OK = ("spread-region-cluster.yaml", "field-selector.yaml", "dynamic-weight.yaml",
              "application-failover.yaml", "alpine-overridepolicy.yaml")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("kubectl") / "data", *api_only_args())
    srv.start()
    try:
        discovery = httpx.get(f"{srv.url}/api", verify=srv.verify, timeout=5,
                              headers={"Authorization": f"Bearer {srv.token}"})
        if discovery.status_code != 200 or discovery.json().get("kind") != "APIVersions":
            pytest.skip("kubectl needs discovery (GET /api, /apis), served by the API's "
                        "read half; not in this build")
        yield srv
    finally:
        srv.stop()


class Kubectl:
    def __init__(self, server: ServerProcess, home: Path) -> None:
        self.server = server
        self.home = home
        self.config = home / "kubeconfig"
        self.config.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "flotilla",
            "clusters": [{"name": "flotilla", "cluster": {
                "server": server.url, "certificate-authority": str(server.ca)}}],
            "users": [{"name": "admin", "user": {"token": server.token}}],
            "contexts": [{"name": "flotilla",
                          "context": {"cluster": "flotilla", "user": "admin"}}],
        }))
        self.config.chmod(0o600)

    def __call__(self, *args: str, input: str | None = None, ok: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                   "KUBECONFIG": str(self.config), **(env or {})}
        done = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=run_env,
                              input=input, timeout=60, check=False)
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    def get(self, path: str) -> dict[str, Any]:
        r = httpx.get(f"{self.server.url}{path}", verify=self.server.verify, timeout=10,
                      headers={"Authorization": f"Bearer {self.server.token}"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def kubectl(server: ServerProcess, tmp_path: Path) -> Kubectl:
    return Kubectl(server, tmp_path)


def _in_namespace(path: Path, namespace: str, out: Path, **replace: str) -> Path:
    text = path.read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if by_kind(doc["kind"]).namespaced:
            doc["metadata"]["namespace"] = namespace
    out.write_text(yaml.safe_dump_all(docs))
    return out


def _lines(done: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


def test_client_side_apply_unchanged_then_configured(kubectl: Kubectl, tmp_path: Path
                                                     ) -> None:
    shop = _in_namespace(SHOP, "csa", tmp_path / "shop.yaml")
    created = _lines(kubectl("apply", "-f", str(shop)))
    assert "deployment.apps/shop created" in created
    assert "propagationpolicy.policy.flotilla.io/shop created" in created
    again = _lines(kubectl("apply", "-f", str(shop)))
    assert all(line.endswith(" unchanged") for line in again), again
    assert len(again) == len(created)
    changed = _in_namespace(SHOP, "csa", tmp_path / "shop7.yaml",
                            **{"replicas: 6": "replicas: 7"})
    third = _lines(kubectl("apply", "-f", str(changed)))
    assert "deployment.apps/shop configured" in third
    assert "service/shop unchanged" in third
    deploy = kubectl.get("/apis/apps/v1/namespaces/csa/deployments/shop")
    assert deploy["spec"]["replicas"] == 7
    assert "kubectl.kubernetes.io/last-applied-configuration" in \
        deploy["metadata"]["annotations"]


def test_server_side_apply_conflict_between_managers_and_force(kubectl: Kubectl,
                                                               tmp_path: Path) -> None:
    shop = _in_namespace(SHOP, "ssa", tmp_path / "shop.yaml")
    first = _lines(kubectl("apply", "--server-side", "-f", str(shop)))
    assert "deployment.apps/shop serverside-applied" in first
    kubectl("apply", "--server-side", "-f", str(shop))  # unchanged: no conflict
    changed = _in_namespace(SHOP, "ssa", tmp_path / "shop7.yaml",
                            **{"replicas: 6": "replicas: 7"})
    refused = kubectl("apply", "--server-side", "--field-manager=autoscaler", "-f",
                      str(changed), ok=False)
    assert refused.returncode != 0
    assert 'conflict with "kubectl" using apps/v1: .spec.replicas' in refused.stderr
    assert "--force-conflicts" in refused.stderr
    kubectl("apply", "--server-side", "--field-manager=autoscaler", "--force-conflicts",
            "-f", str(changed))
    deploy = kubectl.get("/apis/apps/v1/namespaces/ssa/deployments/shop")
    assert deploy["spec"]["replicas"] == 7
    managers = {m["manager"]: m for m in deploy["metadata"]["managedFields"]}
    assert managers["autoscaler"]["operation"] == "Apply"
    assert "f:replicas" in managers["autoscaler"]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in managers["kubectl"]["fieldsV1"]["f:spec"]


def test_edit_patch_label_annotate_scale(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(_in_namespace(SHOP, "ed", tmp_path / "shop.yaml")))
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's|image: flotilla/shop:v1|image: flotilla/shop:v2|'"
                      ' "$1"\n')
    editor.chmod(0o755)
    kubectl("-n", "ed", "edit", "deploy", "shop", env={"EDITOR": str(editor)})
    path = "/apis/apps/v1/namespaces/ed/deployments/shop"
    assert kubectl.get(path)["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "flotilla/shop:v2"
    kubectl("-n", "ed", "patch", "deploy", "shop", "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"shop","env":'
            '[{"name":"EXTRA","value":"1"}]}]}}}}')  # strategic: env merged by name
    env = kubectl.get(path)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"] for e in env} == {"EXTRA", "SHOP_VERSION"}
    kubectl("-n", "ed", "patch", "deploy", "shop", "--type", "merge", "-p",
            '{"spec":{"replicas":3}}')
    kubectl("-n", "ed", "patch", "deploy", "shop", "--type", "json", "-p",
            '[{"op":"test","path":"/spec/replicas","value":3},'
            '{"op":"replace","path":"/spec/replicas","value":4}]')
    assert kubectl.get(path)["spec"]["replicas"] == 4
    failed = kubectl("-n", "ed", "patch", "deploy", "shop", "--type", "json", "-p",
                     '[{"op":"test","path":"/spec/replicas","value":99}]', ok=False)
    assert "test failed" in failed.stderr
    kubectl("-n", "ed", "patch", "propagationpolicies.policy.flotilla.io", "shop", "-p",
            '{"spec":{"priority":5}}')  # a Flotilla kind: merge semantics
    pp = kubectl.get("/apis/policy.flotilla.io/v1alpha1/namespaces/ed/propagationpolicies/shop")
    assert pp["spec"]["priority"] == 5
    kubectl("-n", "ed", "label", "deploy", "shop", "tier=web")
    kubectl("-n", "ed", "annotate", "deploy", "shop", "note=hello")
    meta = kubectl.get(path)["metadata"]
    assert meta["labels"]["tier"] == "web"
    assert meta["annotations"]["note"] == "hello"
    assert "deployment.apps/shop scaled" in \
        kubectl("-n", "ed", "scale", "deploy", "shop", "--replicas", "9").stdout
    assert kubectl.get(path)["spec"]["replicas"] == 9
    managers = {m["manager"] for m in kubectl.get(path)["metadata"]["managedFields"]}
    assert {"kubectl-edit", "kubectl-patch", "kubectl-label", "kubectl-annotate"} <= managers


def test_validate_strict_refuses_an_unknown_field_by_name(kubectl: Kubectl,
                                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: bad, namespace: val}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: shop}]
  placement:
    clusterAffinity: {clusterNames: [east-1]}
    bogusField: 1
""")
    refused = kubectl("apply", "--validate=strict", "-f", str(bad), ok=False)
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "spec.placement.bogusField"' in \
        refused.stderr
    warned = kubectl("apply", "--validate=warn", "-f", str(bad))
    assert 'unknown field "spec.placement.bogusField"' in warned.stderr
    stored = kubectl.get("/apis/policy.karmada.io/v1alpha1/namespaces/val/"
                         "propagationpolicies/bad")
    assert "bogusField" not in stored["spec"]["placement"]


def test_explain_prints_the_field_docs(kubectl: Kubectl) -> None:
    out = kubectl("explain", "propagationpolicy.spec.placement").stdout
    assert "KIND:       PropagationPolicy" in out
    assert "Which member clusters the selected resources may run in" in out
    assert "clusterAffinity\t<ClusterAffinity>" in out
    assert "Ordered fallback groups of clusters" in out


def test_protobuf_create_is_refused_with_the_way_round(kubectl: Kubectl) -> None:
    refused = kubectl("-n", "pb", "create", "configmap", "x", "--from-literal=a=b",
                      ok=False)
    assert refused.returncode != 0
    assert "--dry-run=client -o yaml | kubectl apply -f -" in refused.stderr
    rendered = kubectl("-n", "pb", "create", "configmap", "x", "--from-literal=a=b",
                       "--dry-run=client", "-o", "yaml").stdout
    kubectl("apply", "-f", "-", input=rendered)
    assert kubectl.get("/api/v1/namespaces/pb/configmaps/x")["data"] == {"a": "b"}


def _desired(obj: dict[str, Any]) -> dict[str, Any]:
    """What a user wrote: every top-level field but metadata and status, plus labels."""
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    out["labels"] = obj["metadata"].get("labels") or {}
    return out


def test_kubectl_apply_stores_what_flotilla_apply_stores(kubectl: Kubectl,
                                                         server: ServerProcess,
                                                         tmp_path: Path) -> None:
    sources = [SHOP, *(KARMADA_FILES / name for name in KARMADA_OK),
               *sorted(SHARED_SAMPLES.glob("*.yaml"))]
    for n, source in enumerate(sources):
        via_kubectl = _in_namespace(source, f"same-k{n}", tmp_path / f"k{n}.yaml")
        via_flotilla = _in_namespace(source, f"same-f{n}", tmp_path / f"f{n}.yaml")
        kubectl("apply", "-f", str(via_kubectl))
        done = flotilla("apply", "-f", str(via_flotilla), env=server.client_env())
        assert done.returncode == 0, done.stderr
        for doc in yaml.safe_load_all(via_kubectl.read_text()):
            kind = by_kind(doc["kind"])
            group_version = doc["apiVersion"]
            root = f"/apis/{group_version}" if "/" in group_version else \
                f"/api/{group_version}"
            name = doc["metadata"]["name"]
            a = kubectl.get(f"{root}/namespaces/same-k{n}/{kind.plural}/{name}")
            b = kubectl.get(f"{root}/namespaces/same-f{n}/{kind.plural}/{name}")
            assert _desired(a) == _desired(b), f"{source.name}: {doc['kind']} {name}"
