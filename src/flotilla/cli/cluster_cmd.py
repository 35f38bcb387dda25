"""``flotilla cluster cordon|uncordon|taint|untaint``: operate on member clusters."""

from __future__ import annotations

import click

from flotilla.cli.output import echo
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import now_rfc3339

CLUSTER = by_kind("Cluster")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@click.group(epilog="""\b
Examples:
  flotilla cluster cordon burst-1                       # no new placements
  flotilla cluster taint east-1 maintenance=true:NoExecute
  flotilla cluster untaint east-1 maintenance
""")
def cluster() -> None:
    """Cordon, uncordon, taint and untaint member clusters."""


def _change(name: str, server: str | None, token: str | None, fn: object, done: str) -> None:
    conn = connect(server, token)

    async def work(client: ResourceClient) -> None:
        result = await converge(client, CLUSTER, "", name, fn)  # type: ignore[arg-type]
        if result is None:
            raise CliError(f'cluster "{name}" not found')

    call(conn, work)
    echo(f"cluster/{name} {done}")


@cluster.command()
@click.argument("name")
@connection_options
def cordon(name: str, server: str | None, token: str | None) -> None:
    """Stop placing new replicas on NAME (existing ones stay)."""
    def change(obj: Object) -> bool:
        spec = obj.setdefault("spec", {})
        was = bool(spec.get("unschedulable"))
        spec["unschedulable"] = True
        return not was
    _change(name, server, token, change, "cordoned")


@cluster.command()
@click.argument("name")
@connection_options
def uncordon(name: str, server: str | None, token: str | None) -> None:
    """Allow new placements on NAME again."""
    def change(obj: Object) -> bool:
        spec = obj.setdefault("spec", {})
        was = bool(spec.get("unschedulable"))
        spec["unschedulable"] = False
        return was
    _change(name, server, token, change, "uncordoned")


def parse_taint(text: str) -> tuple[str, str, str]:
    """``key[=value]:Effect``."""
    head, sep, effect = text.rpartition(":")
    if not sep or effect not in EFFECTS:
        raise CliError(f"taint {text!r}: expected KEY[=VALUE]:EFFECT with EFFECT one of "
                       f"{', '.join(EFFECTS)}", exit_code=2)
    key, _, value = head.partition("=")
    if not key:
        raise CliError(f"taint {text!r}: the key is empty", exit_code=2)
    return key, value, effect


@cluster.command()
@click.argument("name")
@click.argument("taint", metavar="KEY[=VALUE]:EFFECT")
@connection_options
def taint(name: str, taint: str, server: str | None, token: str | None) -> None:
    """Add a taint: NoSchedule keeps new replicas away, NoExecute also moves existing
    ones away (after the policy's toleration)."""
    key, value, effect = parse_taint(taint)

    def change(obj: Object) -> bool:
        spec = obj.setdefault("spec", {})
        taints = [t for t in spec.get("taints") or []
                  if not (t.get("key") == key and t.get("effect") == effect)]
        taints.append({"key": key, "value": value, "effect": effect,
                       "timeAdded": now_rfc3339()})
        spec["taints"] = taints
        return True
    _change(name, server, token, change, f"tainted {taint}")


@cluster.command()
@click.argument("name")
@click.argument("key", metavar="KEY[:EFFECT]")
@connection_options
def untaint(name: str, key: str, server: str | None, token: str | None) -> None:
    """Remove the taints with KEY (only those with EFFECT, if given)."""
    k, _, effect = key.partition(":")

    def change(obj: Object) -> bool:
        spec = obj.setdefault("spec", {})
        taints = spec.get("taints") or []
        kept = [t for t in taints
                if not (t.get("key") == k and (not effect or t.get("effect") == effect))]
        spec["taints"] = kept
        return len(kept) != len(taints)
    _change(name, server, token, change, f"untainted {key}")
