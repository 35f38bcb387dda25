"""Policy precedence and overrides, on real Karmada sample files and hand-made cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.controllers.placement.matching import best_policy
from flotilla.controllers.placement.overrides import OverrideError, apply_overrides
from flotilla.controllers.placement.render import referenced_dependencies, render_for_cluster
from flotilla.scheduler import compile_cluster

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "shared-samples"


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((SAMPLES / name).read_text()))


def cluster(name: str, region: str = "r1", labels: dict[str, str] | None = None) -> Any:
    return compile_cluster({"metadata": {"name": name, "labels": labels or {}},
                            "spec": {"region": region}, "status": {}})


def deployment(name: str = "web", ns: str = "default",
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "command": ["nginx"]}]}}}}


def policy(name: str, selector: dict[str, Any], *, kind: str = "PropagationPolicy",
           ns: str = "default", priority: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"resourceSelectors": [{"apiVersion": "apps/v1",
                                                   "kind": "Deployment", **selector}]}
    if priority is not None:
        spec["priority"] = priority
    meta = {"name": name, **({"namespace": ns} if kind == "PropagationPolicy" else {})}
    return {"apiVersion": "policy.karmada.io/v1alpha1", "kind": kind, "metadata": meta,
            "spec": spec}


def test_name_match_beats_label_match_beats_kind_match() -> None:
    d = deployment(labels={"app": "web"})
    by_kind = policy("a-kind", {})
    by_label = policy("b-label", {"labelSelector": {"matchLabels": {"app": "web"}}})
    by_name = policy("c-name", {"name": "web"})
    assert best_policy(d, [by_kind, by_label, by_name])["metadata"]["name"] == "c-name"
    assert best_policy(d, [by_kind, by_label])["metadata"]["name"] == "b-label"


def test_explicit_priority_beats_specificity_and_namespaced_beats_cluster() -> None:
    d = deployment()
    high = policy("z-high", {}, priority=10)
    named = policy("a-named", {"name": "web"})
    assert best_policy(d, [high, named])["metadata"]["name"] == "z-high"
    cluster_wide = policy("cpp", {"name": "web"}, kind="ClusterPropagationPolicy",
                          priority=100)
    assert best_policy(d, [cluster_wide, policy("pp", {})])["metadata"]["name"] == "pp"
    assert best_policy(d, [cluster_wide])["metadata"]["name"] == "cpp"


def test_policy_in_another_namespace_does_not_govern() -> None:
    assert best_policy(deployment(ns="shop"), [policy("p", {"name": "web"})]) is None


def test_equal_policies_resolve_by_name() -> None:
    d = deployment()
    assert best_policy(d, [policy("b", {}), policy("a", {})])["metadata"]["name"] == "a"


def test_karmada_override_sample_applies_per_cluster() -> None:
    """samples/nginx overridepolicy: labels on member2, annotations on member1."""
    op = load("nginx-overridepolicy.yaml")
    op["metadata"]["namespace"] = "default"
    nginx = load("nginx-deployment.yaml")
    nginx["metadata"]["namespace"] = "default"
    nginx["metadata"]["labels"] = {"app": "nginx", "for": "for", "bar": "old"}
    nginx["metadata"]["annotations"] = {"bom": "bom", "emma": "olivia"}
    out2, applied2 = apply_overrides(nginx, cluster("member2"), [op])
    assert out2["metadata"]["labels"] == {"app": "nginx", "bar": "test", "env": "skoala-dev",
                                          "env-stat": "skoala-stage"}
    assert [a.overriders for a in applied2] == [("labelsOverrider",) * 4]
    out1, _ = apply_overrides(nginx, cluster("member1"), [op])
    assert out1["metadata"]["annotations"] == {"emma": "sophia", "env": "skoala-stage"}
    assert out1["metadata"]["labels"] == nginx["metadata"]["labels"]
    out3, applied3 = apply_overrides(nginx, cluster("member3"), [op])
    assert out3 == nginx
    assert applied3 == []


def test_image_command_args_and_plaintext_overriders() -> None:
    op = {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "OverridePolicy",
          "metadata": {"name": "o", "namespace": "default"},
          "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                   "overrideRules": [{
                       "targetCluster": {"fieldSelector": {"matchExpressions": [
                           {"key": "region", "operator": "In", "values": ["cn-south"]}]}},
                       "overriders": {
                           "imageOverrider": [
                               {"component": "Registry", "operator": "replace",
                                "value": "registry.south.example"},
                               {"component": "Tag", "operator": "replace", "value": "1.26"}],
                           "commandOverrider": [{"containerName": "web", "operator": "add",
                                                 "value": ["-g", "daemon off;"]}],
                           "argsOverrider": [{"containerName": "web", "operator": "add",
                                              "value": ["--south"]}],
                           "plaintext": [{"path": "/spec/replicas", "operator": "replace",
                                          "value": 5}]}}]}}
    out, _ = apply_overrides(deployment(), cluster("s", "cn-south"), [op])
    c = out["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.south.example/nginx:1.26"
    assert c["command"] == ["nginx", "-g", "daemon off;"]
    assert c["args"] == ["--south"]
    assert out["spec"]["replicas"] == 5
    same, _ = apply_overrides(deployment(), cluster("e", "cn-east"), [op])
    assert same == deployment()


def test_a_broken_patch_names_the_rule() -> None:
    op = {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "OverridePolicy",
          "metadata": {"name": "bad", "namespace": "default"},
          "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                   "overrideRules": [{"overriders": {"plaintext": [
                       {"path": "/spec/nothing/here", "operator": "replace", "value": 1}]}}]}}
    with pytest.raises(OverrideError, match=r"bad: overrideRules\[0\]\.overriders\.plaintext"):
        apply_overrides(deployment(), cluster("c"), [op])


def test_rendering_sets_replicas_strips_server_fields_and_finds_dependencies() -> None:
    d = deployment()
    d["metadata"].update(uid="u", resourceVersion="7", generation=3)
    d["status"] = {"readyReplicas": 2}
    d["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "b"}}}]
    assert referenced_dependencies(d) == {("ConfigMap", "cfg"), ("Secret", "creds")}
    rendered = render_for_cluster(d, 3, cluster("c"), [])
    (main,) = rendered.manifests
    assert main["spec"]["replicas"] == 3
    assert "status" not in main
    assert not {"uid", "resourceVersion", "generation"} & set(main["metadata"])
