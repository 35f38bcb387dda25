"""Manifests → validated, immutable specs the local runtime acts on.

Everything is parsed and checked before anything changes, so a bad manifest is
rejected whole (with the object and field named) and never half-applied. Only the
fields the local runtime honours are read; others are ignored as Kubernetes would
ignore fields a kubelet does not implement.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources.indexes import IndexSetError, parse_indexes
from flotilla.resources.labels import Selector, SelectorError, selector_from_dict
from flotilla.resources.quantity import Quantity, integer_amount
from flotilla.resources.requests import RequestError, container_requests, pod_requests
from flotilla.resources.wellknown import ANNOTATION_JOB_INDEXES
from flotilla.runtimes.base import Manifest, ManifestError, Resources
from flotilla.runtimes.local.jobs import ExitRule, JobRules
from flotilla.runtimes.local.users import SecurityContext

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class Probe:
    #: "httpGet" | "tcpSocket" | "exec"
    action: str
    port: int | str = 0
    path: str = "/"
    host: str = ""
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str | None = None
    #: ("configMap" | "secret", object name, key, optional) for valueFrom
    ref: tuple[str, str, str, bool] | None = None
    #: fieldRef path, e.g. "metadata.name"
    field_path: str | None = None


@dataclass(frozen=True, slots=True)
class EnvFrom:
    """envFrom: every key of a ConfigMap or Secret, optionally prefixed."""

    kind: str  # "configMap" | "secret"
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"

    @property
    def key(self) -> str:
        return self.name or str(self.container_port)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[EnvVar, ...]
    ports: tuple[ContainerPort, ...]
    requests: Resources
    working_dir: str | None = None
    env_from: tuple[EnvFrom, ...] = ()
    readiness: Probe | None = None
    liveness: Probe | None = None
    #: the container's securityContext identity fields over the pod's
    security: SecurityContext = field(default_factory=SecurityContext)


@dataclass(frozen=True, slots=True)
class PodTemplate:
    labels: dict[str, str]
    containers: tuple[ContainerSpec, ...]
    restart_policy: str
    grace_seconds: float
    node_selector: dict[str, str]
    #: stable hash of the template, like Kubernetes' pod-template-hash
    hash: str
    #: the template as given, kept so a restarted agent can rebuild adopted pods exactly
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    #: what one pod asks for (every container, init containers by Kubernetes' rule)
    requests: Resources = field(default_factory=lambda: Resources(pods=1))
    #: the pod-level securityContext: who owns the pod's own directory
    security: SecurityContext = field(default_factory=SecurityContext)


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    namespace: str
    name: str
    generation: int
    replicas: int
    selector: Selector
    template: PodTemplate
    strategy: str  # "RollingUpdate" | "Recreate"
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    #: hash of the whole spec: a change bumps the generation when none is given
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class JobSpec:
    namespace: str
    name: str
    template: PodTemplate
    rules: JobRules


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    namespace: str
    name: str
    selector: dict[str, str]
    ports: tuple[ServicePort, ...]


@dataclass(frozen=True, slots=True)
class DesiredState:
    deployments: dict[Key, DeploymentSpec] = field(default_factory=dict)
    jobs: dict[Key, JobSpec] = field(default_factory=dict)
    services: dict[Key, ServiceSpec] = field(default_factory=dict)
    config_maps: dict[Key, dict[str, str]] = field(default_factory=dict)
    secrets: dict[Key, dict[str, str]] = field(default_factory=dict)


_IGNORED_KINDS = {"Namespace"}


def parse_manifests(manifests: list[Manifest]) -> DesiredState:
    """Parse the complete desired set; ManifestError names the first problem found."""
    state = DesiredState()
    seen: set[tuple[str, str, str]] = set()
    for i, m in enumerate(manifests):
        if not isinstance(m, dict):
            raise ManifestError(f"manifests[{i}]: expected an object, got {type(m).__name__}")
        kind = m.get("kind")
        meta = _obj(m.get("metadata", {}), f"manifests[{i}].metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(f"manifests[{i}] ({kind}): metadata.name is required")
        namespace = meta.get("namespace") or "default"
        if not isinstance(namespace, str):
            raise ManifestError(f"{kind} {name}: metadata.namespace must be a string")
        where = f"{kind} {namespace}/{name}"
        if (str(kind), namespace, name) in seen:
            raise ManifestError(f"{where}: appears twice in the desired set")
        seen.add((str(kind), namespace, name))
        key = (namespace, name)
        if kind == "Deployment":
            state.deployments[key] = _deployment(m, meta, namespace, name, where)
        elif kind == "Job":
            state.jobs[key] = _job(m, meta, namespace, name, where)
        elif kind == "Service":
            state.services[key] = _service(m, namespace, name, where)
        elif kind == "ConfigMap":
            state.config_maps[key] = _data(m, where, encoded=False)
        elif kind == "Secret":
            state.secrets[key] = _data(m, where, encoded=True)
        elif kind not in _IGNORED_KINDS:
            raise ManifestError(
                f"{where}: kind {kind!r} is not supported by the local runtime "
                "(supported: Deployment, Job, Service, ConfigMap, Secret)")
    return state


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _strs(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where)
    for j, item in enumerate(items):
        if not isinstance(item, str):
            raise ManifestError(f"{where}[{j}]: expected a string, got {item!r}")
    return tuple(items)


def _int(value: Any, where: str, *, default: int, minimum: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ManifestError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, where: str, *, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ManifestError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def _labels(value: Any, where: str) -> dict[str, str]:
    labels = _obj(value, where)
    for k, v in labels.items():
        if not isinstance(v, str):
            raise ManifestError(f"{where}.{k}: label values must be strings, got {v!r}")
    return dict(labels)


def _int_or_string(value: Any, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ManifestError(f"{where}: expected an integer or a name, got {value!r}")
    return value


def _deployment(m: Manifest, meta: dict[str, Any], namespace: str, name: str,
                where: str) -> DeploymentSpec:
    spec = _obj(m.get("spec"), f"{where}: spec")
    try:
        selector = selector_from_dict(_obj(spec.get("selector"), f"{where}: spec.selector"),
                                      f"{where}: spec.selector")
    except SelectorError as exc:
        raise ManifestError(str(exc)) from exc
    if selector.empty:
        raise ManifestError(f"{where}: spec.selector is required and must not be empty")
    template_raw = _obj(spec.get("template"), f"{where}: spec.template")
    template = _template(template_raw, f"{where}: spec.template")
    if not selector.matches(template.labels):
        raise ManifestError(
            f"{where}: spec.template.metadata.labels {template.labels} do not match "
            f"spec.selector ({selector})")
    strategy = _obj(spec.get("strategy"), f"{where}: spec.strategy")
    kind = strategy.get("type", "RollingUpdate")
    if kind not in ("RollingUpdate", "Recreate"):
        raise ManifestError(f"{where}: spec.strategy.type must be RollingUpdate or Recreate, "
                            f"got {kind!r}")
    rolling = _obj(strategy.get("rollingUpdate"), f"{where}: spec.strategy.rollingUpdate")
    surge = _intstr_percent(rolling.get("maxSurge", "25%"),
                            f"{where}: spec.strategy.rollingUpdate.maxSurge")
    unavailable = _intstr_percent(rolling.get("maxUnavailable", "25%"),
                                  f"{where}: spec.strategy.rollingUpdate.maxUnavailable")
    if kind == "RollingUpdate" and _is_zero(surge) and _is_zero(unavailable):
        raise ManifestError(f"{where}: spec.strategy.rollingUpdate: maxSurge and "
                            "maxUnavailable may not both be 0")
    return DeploymentSpec(
        namespace=namespace, name=name,
        generation=_int(meta.get("generation"), f"{where}: metadata.generation", default=0),
        replicas=_int(spec.get("replicas"), f"{where}: spec.replicas", default=1),
        selector=selector, template=template, strategy=kind, max_surge=surge,
        max_unavailable=unavailable,
        fingerprint=hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
        .hexdigest()[:16])


def _job(m: Manifest, meta: dict[str, Any], namespace: str, name: str, where: str
         ) -> JobSpec:
    spec = _obj(m.get("spec"), f"{where}: spec")
    template = _template(_obj(spec.get("template"), f"{where}: spec.template"),
                         f"{where}: spec.template")
    if template.restart_policy == "Always":
        raise ManifestError(f"{where}: spec.template.spec.restartPolicy must be Never or "
                            "OnFailure")
    mode = spec.get("completionMode", "NonIndexed")
    if mode not in ("NonIndexed", "Indexed"):
        raise ManifestError(f"{where}: spec.completionMode must be NonIndexed or Indexed, "
                            f"got {mode!r}")
    parallelism = _int(spec.get("parallelism"), f"{where}: spec.parallelism", default=1)
    # Kubernetes: without completions, the Job is done when one pod succeeds.
    completions = _int(spec.get("completions"), f"{where}: spec.completions", default=1)
    indexes = frozenset(range(completions))
    raw_share = _labels((meta.get("annotations") or {}), f"{where}: metadata.annotations"
                        ).get(ANNOTATION_JOB_INDEXES)
    if raw_share is not None and mode == "Indexed":
        try:
            indexes = parse_indexes(raw_share)
        except IndexSetError as exc:
            raise ManifestError(f"{where}: annotation {ANNOTATION_JOB_INDEXES}: {exc}") from exc
        completions = len(indexes)
    rules = []
    policy = _obj(spec.get("podFailurePolicy"), f"{where}: spec.podFailurePolicy")
    for j, rule in enumerate(_list(policy.get("rules"), f"{where}: spec.podFailurePolicy.rules")):
        at = f"{where}: spec.podFailurePolicy.rules[{j}]"
        rule = _obj(rule, at)
        codes = _obj(rule.get("onExitCodes"), f"{at}.onExitCodes")
        if not codes:
            continue  # onPodConditions: the local runtime has no pod disruptions
        values = _list(codes.get("values"), f"{at}.onExitCodes.values")
        rules.append(ExitRule(
            str(rule.get("action", "Count")), str(codes.get("operator", "In")),
            frozenset(_int(v, f"{at}.onExitCodes.values", default=0) for v in values),
            codes.get("containerName")))
    deadline = spec.get("activeDeadlineSeconds")
    ttl = spec.get("ttlSecondsAfterFinished")
    return JobSpec(namespace, name, template, JobRules(
        completions=completions, parallelism=parallelism, indexed=mode == "Indexed",
        indexes=indexes,
        backoff_limit=_int(spec.get("backoffLimit"), f"{where}: spec.backoffLimit", default=6),
        active_deadline=None if deadline is None else _number(
            deadline, f"{where}: spec.activeDeadlineSeconds", default=0.0),
        ttl_after_finished=None if ttl is None else _number(
            ttl, f"{where}: spec.ttlSecondsAfterFinished", default=0.0),
        rules=tuple(rules), suspended=spec.get("suspend") is True))


def _is_zero(value: int | str) -> bool:
    return value in (0, "0%")


def _intstr_percent(value: Any, where: str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        return value
    raise ManifestError(f"{where}: expected an integer or a percentage like '25%', got {value!r}")


def parse_template(raw: dict[str, Any], where: str = "template") -> PodTemplate:
    """A pod template (``{metadata, spec}``) on its own, e.g. for capacity estimates."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object, got {type(raw).__name__}")
    return _template(raw, where)


def _template(raw: dict[str, Any], where: str) -> PodTemplate:
    meta = _obj(raw.get("metadata"), f"{where}.metadata")
    spec = _obj(raw.get("spec"), f"{where}.spec")
    containers_raw = _list(spec.get("containers"), f"{where}.spec.containers")
    if not containers_raw:
        raise ManifestError(f"{where}.spec.containers: at least one container is required")
    pod_security = _security(spec.get("securityContext"), f"{where}.spec.securityContext")
    containers = tuple(_container(_obj(c, f"{where}.spec.containers[{i}]"),
                                  f"{where}.spec.containers[{i}]", pod_security)
                       for i, c in enumerate(containers_raw))
    names = [c.name for c in containers]
    if len(set(names)) != len(names):
        raise ManifestError(f"{where}.spec.containers: container names must be unique")
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        raise ManifestError(f"{where}.spec.restartPolicy: expected Always, OnFailure or Never, "
                            f"got {policy!r}")
    try:
        requests = _resources(pod_requests(spec, f"{where}.spec"), pods=1)
    except RequestError as exc:
        raise ManifestError(str(exc)) from exc
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return PodTemplate(
        labels=_labels(meta.get("labels"), f"{where}.metadata.labels"),
        containers=containers, restart_policy=policy,
        grace_seconds=_number(spec.get("terminationGracePeriodSeconds"),
                              f"{where}.spec.terminationGracePeriodSeconds", default=30.0),
        node_selector=_labels(spec.get("nodeSelector"), f"{where}.spec.nodeSelector"),
        hash=digest[:10], raw=raw, requests=requests, security=pod_security)


def _resources(requests: dict[str, Quantity], pods: int) -> Resources:
    """The runtime's integer units; resources it does not track (extended) are ignored."""
    return Resources(integer_amount("cpu", requests["cpu"]) if "cpu" in requests else 0,
                     integer_amount("memory", requests["memory"])
                     if "memory" in requests else 0, pods)


def _security(value: Any, where: str) -> SecurityContext:
    """runAsUser / runAsGroup / runAsNonRoot of a securityContext; other fields (such as
    capabilities) are ignored like any field the local runtime does not implement."""
    raw = _obj(value, where)
    ids = {}
    for name in ("runAsUser", "runAsGroup"):
        if raw.get(name) is not None:
            ids[name] = _int(raw[name], f"{where}.{name}", default=0, minimum=0)
    non_root = raw.get("runAsNonRoot")
    if non_root is not None and not isinstance(non_root, bool):
        raise ManifestError(f"{where}.runAsNonRoot must be true or false, got {non_root!r}")
    return SecurityContext(ids.get("runAsUser"), ids.get("runAsGroup"), non_root)


def _container(raw: dict[str, Any], where: str,
               pod_security: SecurityContext | None = None) -> ContainerSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}.name is required")
    ports = []
    for j, p in enumerate(_list(raw.get("ports"), f"{where}.ports")):
        p = _obj(p, f"{where}.ports[{j}]")
        number = _int(p.get("containerPort"), f"{where}.ports[{j}].containerPort", default=0,
                      minimum=1)
        if number == 0 or number > 65535:
            raise ManifestError(f"{where}.ports[{j}].containerPort: required, 1-65535")
        port_name = p.get("name", "")
        if not isinstance(port_name, str):
            raise ManifestError(f"{where}.ports[{j}].name must be a string")
        ports.append(ContainerPort(number, port_name, str(p.get("protocol", "TCP"))))
    try:
        req = _resources(container_requests(raw, where), pods=0)
    except RequestError as exc:
        raise ManifestError(str(exc)) from exc
    working_dir = raw.get("workingDir")
    if working_dir is not None and not isinstance(working_dir, str):
        raise ManifestError(f"{where}.workingDir must be a string")
    return ContainerSpec(
        name=name, image=str(raw.get("image", "")),
        command=_strs(raw.get("command"), f"{where}.command"),
        args=_strs(raw.get("args"), f"{where}.args"),
        env=tuple(_env(_obj(e, f"{where}.env[{j}]"), f"{where}.env[{j}]")
                  for j, e in enumerate(_list(raw.get("env"), f"{where}.env"))),
        env_from=tuple(_env_from(_obj(e, f"{where}.envFrom[{j}]"), f"{where}.envFrom[{j}]")
                       for j, e in enumerate(_list(raw.get("envFrom"), f"{where}.envFrom"))),
        ports=tuple(ports), requests=req, working_dir=working_dir,
        readiness=_probe(raw.get("readinessProbe"), f"{where}.readinessProbe"),
        liveness=_probe(raw.get("livenessProbe"), f"{where}.livenessProbe"),
        security=_security(raw.get("securityContext"), f"{where}.securityContext")
        .over(pod_security or SecurityContext()))


def _env(raw: dict[str, Any], where: str) -> EnvVar:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}.name is required")
    if "valueFrom" not in raw:
        value = raw.get("value", "")
        if not isinstance(value, str):
            raise ManifestError(f"{where}.value: env values must be strings, got {value!r}")
        return EnvVar(name, value=value)
    source = _obj(raw["valueFrom"], f"{where}.valueFrom")
    for field_name, kind in (("configMapKeyRef", "configMap"), ("secretKeyRef", "secret")):
        if field_name in source:
            ref = _obj(source[field_name], f"{where}.valueFrom.{field_name}")
            obj, key = ref.get("name"), ref.get("key")
            if not isinstance(obj, str) or not isinstance(key, str) or not obj or not key:
                raise ManifestError(f"{where}.valueFrom.{field_name}: name and key are required")
            return EnvVar(name, ref=(kind, obj, key, bool(ref.get("optional", False))))
    if "fieldRef" in source:
        path = _obj(source["fieldRef"], f"{where}.valueFrom.fieldRef").get("fieldPath")
        if path not in _FIELD_PATHS:
            raise ManifestError(f"{where}.valueFrom.fieldRef.fieldPath: supported are "
                                f"{', '.join(sorted(_FIELD_PATHS))}, got {path!r}")
        return EnvVar(name, field_path=path)
    raise ManifestError(f"{where}.valueFrom: expected configMapKeyRef, secretKeyRef or fieldRef")


def _env_from(raw: dict[str, Any], where: str) -> EnvFrom:
    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str):
        raise ManifestError(f"{where}.prefix must be a string")
    for field_name, kind in (("configMapRef", "configMap"), ("secretRef", "secret")):
        if field_name in raw:
            ref = _obj(raw[field_name], f"{where}.{field_name}")
            name = ref.get("name")
            if not isinstance(name, str) or not name:
                raise ManifestError(f"{where}.{field_name}.name is required")
            return EnvFrom(kind, name, prefix, bool(ref.get("optional", False)))
    raise ManifestError(f"{where}: expected configMapRef or secretRef")


_FIELD_PATHS = {"metadata.name", "metadata.namespace", "spec.nodeName", "status.podIP"}


def _probe(value: Any, where: str) -> Probe | None:
    if value is None:
        return None
    raw = _obj(value, where)
    common = {
        "initial_delay": _number(raw.get("initialDelaySeconds"), f"{where}.initialDelaySeconds",
                                 default=0.0),
        "period": _number(raw.get("periodSeconds"), f"{where}.periodSeconds", default=10.0),
        "timeout": _number(raw.get("timeoutSeconds"), f"{where}.timeoutSeconds", default=1.0),
        "failure_threshold": _int(raw.get("failureThreshold"), f"{where}.failureThreshold",
                                  default=3, minimum=1),
        "success_threshold": _int(raw.get("successThreshold"), f"{where}.successThreshold",
                                  default=1, minimum=1),
    }
    if common["period"] <= 0 or common["timeout"] <= 0:
        raise ManifestError(f"{where}: periodSeconds and timeoutSeconds must be > 0")
    if "httpGet" in raw:
        http = _obj(raw["httpGet"], f"{where}.httpGet")
        path = http.get("path", "/")
        if not isinstance(path, str):
            raise ManifestError(f"{where}.httpGet.path must be a string")
        return Probe("httpGet", port=_int_or_string(http.get("port"), f"{where}.httpGet.port"),
                     path=path, host=str(http.get("host", "")), **common)  # type: ignore[arg-type]
    if "tcpSocket" in raw:
        tcp = _obj(raw["tcpSocket"], f"{where}.tcpSocket")
        return Probe("tcpSocket", port=_int_or_string(tcp.get("port"), f"{where}.tcpSocket.port"),
                     host=str(tcp.get("host", "")), **common)  # type: ignore[arg-type]
    if "exec" in raw:
        command = _strs(_obj(raw["exec"], f"{where}.exec").get("command"),
                        f"{where}.exec.command")
        if not command:
            raise ManifestError(f"{where}.exec.command must not be empty")
        return Probe("exec", command=command, **common)  # type: ignore[arg-type]
    raise ManifestError(f"{where}: expected one of httpGet, tcpSocket, exec")


def _service(m: Manifest, namespace: str, name: str, where: str) -> ServiceSpec:
    spec = _obj(m.get("spec"), f"{where}: spec")
    ports = []
    for j, p in enumerate(_list(spec.get("ports"), f"{where}: spec.ports")):
        p = _obj(p, f"{where}: spec.ports[{j}]")
        number = _int(p.get("port"), f"{where}: spec.ports[{j}].port", default=0, minimum=1)
        if number == 0 or number > 65535:
            raise ManifestError(f"{where}: spec.ports[{j}].port: required, 1-65535")
        target = _int_or_string(p.get("targetPort", number), f"{where}: spec.ports[{j}].targetPort")
        port_name = p.get("name", "")
        if not isinstance(port_name, str):
            raise ManifestError(f"{where}: spec.ports[{j}].name must be a string")
        ports.append(ServicePort(port_name, number, target, str(p.get("protocol", "TCP"))))
    if len(ports) > 1 and any(not p.name for p in ports):
        raise ManifestError(f"{where}: spec.ports: every port needs a name when there are several")
    return ServiceSpec(namespace, name, _labels(spec.get("selector"), f"{where}: spec.selector"),
                       tuple(ports))


def _data(m: Manifest, where: str, *, encoded: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _obj(m.get("data"), f"{where}: data").items():
        if not isinstance(value, str):
            raise ManifestError(f"{where}: data.{key} must be a string")
        if encoded:
            try:
                value = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ManifestError(f"{where}: data.{key} is not base64 text: {exc}") from exc
        out[key] = value
    if encoded:
        for key, value in _obj(m.get("stringData"), f"{where}: stringData").items():
            if not isinstance(value, str):
                raise ManifestError(f"{where}: stringData.{key} must be a string")
            out[key] = value
    return out
