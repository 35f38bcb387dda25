"""Bad input is reported at the field's path, in plain words, one error per problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from flotilla.resources.kinds import UnknownKind
from flotilla.resources.validation import InvalidObject, validate_object
from tests.resources.conftest import SHARED_SAMPLES, load_documents, load_one


def _errors(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidObject) as info:
        validate_object(obj)
    return {e.path: e.message for e in info.value.errors}


def _policy() -> dict[str, Any]:
    return load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]


def _deployment() -> dict[str, Any]:
    return load_documents(SHARED_SAMPLES / "nginx-deployment.yaml")[0]


def test_unknown_field_of_our_own_kind() -> None:
    doc = _policy()
    doc["spec"]["placement"]["clusterAffinity"]["foo"] = "bar"
    assert _errors(doc) == {"spec.placement.clusterAffinity.foo": "unknown field"}


def test_unknown_top_level_field_of_our_own_kind() -> None:
    doc = _policy()
    doc["sepc"] = {}
    assert _errors(doc) == {"sepc": "unknown field"}


def test_wrong_type_names_the_value() -> None:
    doc = _policy()
    doc["spec"]["placement"]["replicaScheduling"]["weightPreference"]["staticWeightList"][1][
        "weight"] = "abc"
    assert _errors(doc) == {
        "spec.placement.replicaScheduling.weightPreference.staticWeightList[1].weight":
            "expected an integer, got 'abc'"
    }


def test_numbers_in_quotes_are_not_integers() -> None:
    doc = _policy()
    doc["spec"]["priority"] = "10"
    assert _errors(doc) == {"spec.priority": "expected an integer, got '10'"}


def test_bad_enum_lists_the_choices() -> None:
    doc = _policy()
    doc["spec"]["placement"]["replicaScheduling"]["replicaDivisionPreference"] = "Heavy"
    assert _errors(doc) == {
        "spec.placement.replicaScheduling.replicaDivisionPreference":
            "expected 'Aggregated' or 'Weighted', got 'Heavy'"
    }


def test_bad_duration() -> None:
    doc = load_one("""
        apiVersion: apps.flotilla.io/v1alpha1
        kind: RolloutPolicy
        metadata: {name: shop, namespace: default}
        spec:
          selector: {name: shop}
          waves: [{percent: 100}]
          pause: 10 seconds
          analysis: {interval: 2}
    """)
    errors = _errors(doc)
    assert set(errors) == {"spec.pause", "spec.analysis.interval"}
    assert "'10 seconds'" in errors["spec.pause"]
    assert errors["spec.analysis.interval"] == \
        "expected a duration such as '10s' or '500ms', got 2"


def test_bad_labels_name_the_key() -> None:
    doc = _policy()
    doc["metadata"]["labels"] = {"app.kubernetes.io/name": "ok", "bad key": "x",
                                 "tier": "not valid!", "n": 3}
    errors = _errors(doc)
    assert set(errors) == {'metadata.labels["bad key"]', "metadata.labels.tier",
                           "metadata.labels.n"}
    assert errors['metadata.labels["bad key"]'].startswith("invalid key 'bad key'")
    assert errors["metadata.labels.tier"].startswith("invalid label value 'not valid!'")
    assert errors["metadata.labels.n"] == "expected a string, got 3"


@pytest.mark.parametrize("meta", [{}, None, {"namespace": "demo"}])
def test_missing_name(meta: dict[str, Any] | None) -> None:
    doc = _policy()
    if meta is None:
        del doc["metadata"]
    else:
        doc["metadata"] = meta
    assert _errors(doc) == {"metadata.name": "required field is missing"}


def test_name_must_be_a_dns_subdomain() -> None:
    doc = _deployment()
    doc["metadata"]["name"] = "x" * 254
    assert "at most 253" in _errors(doc)["metadata.name"]
    doc["metadata"]["name"] = "Nginx_1"
    assert _errors(doc)["metadata.name"].startswith("invalid name 'Nginx_1'")


def test_every_problem_is_reported_at_once() -> None:
    doc = _policy()
    doc["metadata"]["name"] = "Bad"
    doc["spec"]["propagateDeps"] = "yes"
    doc["spec"]["resourceSelectors"][0]["kind"] = 3
    assert set(_errors(doc)) == {"metadata.name", "spec.propagateDeps",
                                 "spec.resourceSelectors[0].kind"}


def test_required_spec_fields() -> None:
    doc = _policy()
    doc["spec"]["resourceSelectors"] = []
    assert _errors(doc) == {"spec.resourceSelectors": "must have at least 1 item"}
    del doc["spec"]
    assert _errors(doc) == {"spec": "required field is missing"}


def test_unknown_kind_says_what_is_served() -> None:
    with pytest.raises(UnknownKind, match=r"known kinds: .*PropagationPolicy"):
        validate_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    with pytest.raises(UnknownKind, match=r"policy\.flotilla\.io/v1alpha1 or policy\.karmada\.io"):
        validate_object({"apiVersion": "policy.karmada.io/v1", "kind": "PropagationPolicy",
                         "metadata": {"name": "p"}})


def test_missing_api_version_and_kind() -> None:
    assert _errors({"metadata": {"name": "x"}}) == {
        "apiVersion": "required field is missing", "kind": "required field is missing"}
    with pytest.raises(InvalidObject, match="expected an object, got a list"):
        validate_object([])  # type: ignore[arg-type]


def test_server_set_metadata_is_accepted_and_ignored() -> None:
    doc = _policy()
    doc["metadata"].update(uid="u-1", resourceVersion="17", generation="not checked",
                           creationTimestamp="yesterday", deletionTimestamp=None,
                           managedFields=[{"manager": "kubectl"}])
    validate_object(doc)


def test_metadata_finalizers_and_owner_references() -> None:
    doc = _policy()
    doc["metadata"]["finalizers"] = ["flotilla.io/binding", "bad finalizer"]
    doc["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": "nginx"}]
    errors = _errors(doc)
    assert set(errors) == {"metadata.finalizers[1]", "metadata.ownerReferences[0].uid"}


def test_kubernetes_deployment_with_unknown_fields_is_accepted_unchanged() -> None:
    doc = _deployment()
    doc["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "3"}
    doc["spec"]["progressDeadlineSeconds"] = 600
    doc["spec"]["template"]["spec"]["nodeSelector"] = {"disktype": "ssd"}
    doc["spec"]["template"]["spec"]["containers"][0].update(
        imagePullPolicy="IfNotPresent",
        securityContext={"runAsNonRoot": True},
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    )
    doc["status"] = {"observedGeneration": 4, "replicas": 1, "conditions": [
        {"type": "Available", "status": "True", "lastUpdateTime": "2024-01-01T00:00:00Z"}]}
    before = copy.deepcopy(doc)
    assert validate_object(doc).kind == "Deployment"
    assert doc == before


def test_deployment_fields_flotilla_uses_are_checked() -> None:
    doc = _deployment()
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 80}, {"containerPort": "abc"}]
    container["resources"] = {"requests": {"cpu": "5x"}, "limits": {"memory": "128Mi"}}
    container["readinessProbe"] = {"httpGet": {"path": "/", "port": 70000}}
    container["env"] = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]
    doc["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": "25", "maxUnavailable": "10%"}}
    doc["spec"]["replicas"] = -1
    prefix = "spec.template.spec.containers[0]"
    errors = _errors(doc)
    assert set(errors) == {
        f"{prefix}.ports[1].containerPort", f"{prefix}.resources.requests.cpu",
        f"{prefix}.readinessProbe.httpGet.port", f"{prefix}.env[0].valueFrom.secretKeyRef.key",
        "spec.strategy.rollingUpdate.maxSurge", "spec.replicas",
    }
    assert errors[f"{prefix}.ports[1].containerPort"] == "expected an integer, got 'abc'"
    assert errors["spec.replicas"] == "must be at least 0, got -1"


def test_deployment_selector_must_match_its_template() -> None:
    doc = _deployment()
    doc["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert _errors(doc) == {"spec": "selector does not match template labels"}


def test_probe_needs_exactly_one_handler() -> None:
    doc = _deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = {"periodSeconds": 5}
    assert _errors(doc) == {"spec.template.spec.containers[0].livenessProbe":
                            "a probe needs exactly one of httpGet, tcpSocket or exec"}


def test_secret_data_must_be_base64() -> None:
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"ok": "aGVsbG8=", "bad": "not base64!"}, "stringData": {"plain": "x"}}
    assert _errors(doc) == {
        "data.bad": "invalid base64 data (use stringData for plain text)"}


def test_label_selector_operators_and_values() -> None:
    doc = _policy()
    doc["spec"]["resourceSelectors"][0]["labelSelector"] = {"matchExpressions": [
        {"key": "app", "operator": "In"},
        {"key": "tier", "operator": "Exists", "values": ["x"]},
        {"key": "zone", "operator": "Gt", "values": ["1"]},
    ]}
    base = "spec.resourceSelectors[0].labelSelector.matchExpressions"
    assert _errors(doc) == {
        f"{base}[0]": "operator In needs at least one value",
        f"{base}[1]": "operator Exists takes no values",
        f"{base}[2].operator":
            "expected 'In', 'NotIn', 'Exists' or 'DoesNotExist', got 'Gt'",
    }


def test_non_string_keys_from_yaml() -> None:
    doc = _deployment()
    doc["metadata"][5] = "x"
    doc["metadata"]["labels"][1] = "a"
    assert _errors(doc) == {"metadata[5]": "field names must be strings, got 5",
                            "metadata.labels[1]": "expected a string key, got 1"}


def test_service_names_are_dns_labels() -> None:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "shop.v2"}, "spec": {"ports": [{"port": 80}]}}
    assert _errors(doc)["metadata.name"].startswith("invalid Service name 'shop.v2'")
    doc["metadata"]["name"] = "1shop"
    assert set(_errors(doc)) == {"metadata.name"}
    doc["metadata"]["name"] = "shop-v2"
    validate_object(doc)


def _job() -> dict[str, Any]:
    [doc] = [d for d in load_documents(Path(__file__).parent / "examples" / "every-kind.yaml")
             if d["kind"] == "Job"]
    return doc


def test_job_fields_name_their_path() -> None:
    doc = _job()
    doc["spec"]["completionMode"] = "Sideways"
    doc["spec"]["backoffLimit"] = -1
    doc["spec"]["podFailurePolicy"]["rules"][0]["action"] = "Shrug"
    errors = _errors(doc)
    assert set(errors) == {"spec.completionMode", "spec.backoffLimit",
                           "spec.podFailurePolicy.rules[0].action"}, errors


def test_job_pods_must_run_to_completion() -> None:
    doc = _job()
    doc["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert "restartPolicy must be Never or OnFailure" in " ".join(_errors(doc).values())


def test_indexed_job_needs_completions() -> None:
    doc = _job()
    del doc["spec"]["completions"]
    assert "completions is required" in " ".join(_errors(doc).values())


def _cronjob() -> dict[str, Any]:
    [doc] = [d for d in load_documents(Path(__file__).parent / "examples" / "every-kind.yaml")
             if d["kind"] == "CronJob"]
    return doc


def test_cronjob_fields_name_their_path() -> None:
    doc = _cronjob()
    doc["spec"]["concurrencyPolicy"] = "Sometimes"
    doc["spec"]["successfulJobsHistoryLimit"] = -1
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    errors = _errors(doc)
    assert set(errors) == {"spec.concurrencyPolicy", "spec.successfulJobsHistoryLimit",
                           "spec.jobTemplate.spec"}, errors


def test_cronjob_schedule_and_zone_are_checked_at_apply() -> None:
    doc = _cronjob()
    doc["spec"]["schedule"] = "61 * * * *"
    assert "minute" in " ".join(_errors(doc).values())
    doc = _cronjob()
    doc["spec"]["timeZone"] = "Mars/Olympus"
    assert "Mars/Olympus" in " ".join(_errors(doc).values())
    doc = _cronjob()
    doc["spec"]["schedule"] = "CRON_TZ=Asia/Tokyo 0 9 * * *"
    assert "timeZone" in " ".join(_errors(doc).values())


def test_cronjob_name_leaves_room_for_the_schedule_time() -> None:
    doc = _cronjob()
    doc["metadata"]["name"] = "r" * 53
    assert "at most 52" in " ".join(_errors(doc).values())


def _fhpa(api_version: str = "autoscaling.karmada.io/v1alpha1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "FederatedHPA",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "web"},
                     "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 60}}}]}}


@pytest.mark.parametrize("group", ["autoscaling.karmada.io", "autoscaling.flotilla.io"])
def test_federated_hpa_refuses_what_flotilla_does_not_implement(group: str) -> None:
    external = _fhpa(f"{group}/v1alpha1")
    external["spec"]["metrics"] = [{"type": "External", "external": {
        "metric": {"name": "queue"}, "target": {"type": "Value", "value": "1"}}}]
    errors = _errors(external)
    assert errors["spec.metrics[0].external"] == "field is not supported by Flotilla"
    tolerance = _fhpa(f"{group}/v1alpha1")
    tolerance["spec"]["behavior"] = {"scaleUp": {"tolerance": "0.05"}}
    assert _errors(tolerance) == {
        "spec.behavior.scaleUp.tolerance": "field is not supported by Flotilla"}


def test_federated_hpa_bad_metrics_name_the_field() -> None:
    doc = _fhpa()
    doc["spec"]["metrics"] = [
        {"type": "Object", "object": {
            "describedObject": {"kind": "Service", "name": "web"},
            "metric": {"name": "flotilla.io/errors"},
            "target": {"type": "AverageValue", "averageValue": "20"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
    ]
    errors = _errors(doc)
    assert "unknown Object metric 'flotilla.io/errors'" in errors["spec.metrics[0].object"]
    assert "needs averageUtilization" in errors["spec.metrics[1].resource.target"]
    bounds = _fhpa()
    bounds["spec"]["minReplicas"] = 9
    assert "minReplicas must not exceed maxReplicas" in _errors(bounds)["spec"]


def _cron(rule: dict[str, Any], kind: str = "FederatedHPA") -> dict[str, Any]:
    return {"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "CronFederatedHPA",
            "metadata": {"name": "sale", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "autoscaling.karmada.io/v1alpha1",
                                        "kind": kind, "name": "web"},
                     "rules": [{"name": "sale", "schedule": "0 20 * * *", **rule}]}}


def test_cron_federated_hpa_errors_name_the_rule_field() -> None:
    validate_object(_cron({"targetMinReplicas": 6, "timeZone": "Asia/Shanghai"}))
    assert "minute" in _errors(_cron({"schedule": "61 20 * * *",
                                      "targetMinReplicas": 6}))["spec.rules[0]"]
    assert "unknown time zone" in _errors(_cron({"timeZone": "Mars/Olympus",
                                                 "targetMinReplicas": 6}))["spec.rules[0]"]
    assert "needs targetReplicas" in _errors(_cron({"targetMinReplicas": 6},
                                                   kind="Deployment"))["spec"]
    assert "needs targetMinReplicas or targetMaxReplicas" in _errors(_cron({}))["spec"]
    assert "must not exceed" in _errors(_cron({"targetMinReplicas": 6,
                                               "targetMaxReplicas": 3}))["spec.rules[0]"]
    assert set(_errors(_cron({"targetReplicas": 3}, kind="Service"))) == {
        "spec.scaleTargetRef.kind"}


def test_gateway_report_errors_name_the_entry_field() -> None:
    doc = {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "GatewayReport",
           "metadata": {"name": "gateway", "namespace": "flotilla-system"},
           "spec": {"renewTime": "yesterday",
                    "clusters": [{"name": "east-1", "reachable": "yes"}, {"reachable": True},
                                 {"name": "x", "reachable": True, "latency": 3}]}}
    errors = _errors(doc)
    assert "RFC 3339" in errors["spec.renewTime"]
    assert "spec.clusters[0].reachable" in errors
    assert "spec.clusters[1].name" in errors
    assert errors["spec.clusters[2].latency"] == "unknown field"
