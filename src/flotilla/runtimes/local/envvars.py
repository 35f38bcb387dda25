"""Container environment and Kubernetes ``$(VAR)`` expansion.

Expansion follows Kubernetes exactly: ``$(NAME)`` is replaced when NAME is defined
(earlier in ``env``, or injected by the runtime), left as written when not, and ``$$``
escapes a dollar (``$$(X)`` yields the literal ``$(X)``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from flotilla.runtimes.local.manifests import ContainerSpec, Key

#: inherited from the agent so commands such as ``python3`` resolve and text is decoded as
#: the agent's locale; nothing else of the agent's environment (its HOME, TMPDIR,
#: FLOTILLA_* settings, credentials) reaches a pod
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")
#: PATH for an agent started without one
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EnvError(Exception):
    """A referenced ConfigMap/Secret key is missing: the container cannot start."""


def expand(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    if name in env:
                        out.append(env[name])
                    else:
                        out.append(text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class PodIdentity:
    namespace: str
    name: str
    node: str
    address: str
    cluster: str
    region: str
    zone: str
    #: the pod's own directory: its HOME (and working directory unless workingDir says)
    home: str = ""


def port_env(ports: Mapping[str, int], spec: ContainerSpec) -> dict[str, str]:
    """PORT for the first containerPort, PORT_<NAME> for each named one."""
    env: dict[str, str] = {}
    for i, port in enumerate(spec.ports):
        assigned = ports.get(port.key)
        if assigned is None:
            continue
        if i == 0:
            env["PORT"] = str(assigned)
        if port.name:
            env["PORT_" + port.name.upper().replace("-", "_")] = str(assigned)
    return env


def container_env(spec: ContainerSpec, pod: PodIdentity, ports: Mapping[str, int],
                  config_maps: Mapping[Key, Mapping[str, str]],
                  secrets: Mapping[Key, Mapping[str, str]]) -> dict[str, str]:
    env = {"PATH": _DEFAULT_PATH}
    env.update({k: os.environ[k] for k in _INHERITED if k in os.environ})
    if pod.home:
        env["HOME"] = pod.home
    env.update({
        "POD_NAME": pod.name, "POD_NAMESPACE": pod.namespace, "POD_IP": pod.address,
        "HOST": pod.address, "NODE_NAME": pod.node, "CLUSTER_NAME": pod.cluster,
        "CLUSTER_REGION": pod.region, "CLUSTER_ZONE": pod.zone,
    })
    env.update(port_env(ports, spec))
    fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace,
              "spec.nodeName": pod.node, "status.podIP": pod.address}
    for source_ref in spec.env_from:
        pool = config_maps if source_ref.kind == "configMap" else secrets
        values = pool.get((pod.namespace, source_ref.name))
        if values is None:
            if source_ref.optional:
                continue
            what = "configmap" if source_ref.kind == "configMap" else "secret"
            raise EnvError(f'envFrom: {what} "{source_ref.name}" not found')
        env.update({source_ref.prefix + k: v for k, v in values.items()})
    for var in spec.env:
        if var.ref is not None:
            kind, obj, key, optional = var.ref
            source = (config_maps if kind == "configMap" else secrets).get((pod.namespace, obj))
            if source is None or key not in source:
                if optional:
                    continue
                what = "configmap" if kind == "configMap" else "secret"
                missing = f'{what} "{obj}" not found' if source is None else \
                    f'couldn\'t find key {key} in {what} {pod.namespace}/{obj}'
                raise EnvError(f"env {var.name}: {missing}")
            env[var.name] = source[key]
        elif var.field_path is not None:
            env[var.name] = fields[var.field_path]
        else:
            env[var.name] = expand(var.value or "", env)
    return env


def container_argv(spec: ContainerSpec, env: Mapping[str, str]) -> list[str]:
    return [expand(part, env) for part in (*spec.command, *spec.args)]
