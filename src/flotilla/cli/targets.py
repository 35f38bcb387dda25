"""What a command is pointed at, as kubectl users type it.

``KIND [NAME...]``, ``KIND1,KIND2`` (get, several kinds at once) and ``KIND/NAME...``
(one or more objects, possibly of different kinds). Kind names are resolved through
`flotilla.resources.kinds.lookup`: plural, singular or short name.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotilla.cli.session import CliError
from flotilla.resources.kinds import Kind, UnknownKind, lookup


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    #: Empty means "all objects of the kind".
    names: tuple[str, ...]


def resolve_kind(name: str) -> Kind:
    """Kind from what a user types (plural, singular, short name); usage error if unknown."""
    try:
        return lookup(name)
    except UnknownKind as exc:
        raise CliError(str(exc), exit_code=2) from None


def parse_targets(args: tuple[str, ...], *, many_kinds: bool = True) -> list[Target]:
    """Targets in the order given; objects of one kind are grouped into one Target."""
    if not args:
        raise CliError("name a KIND (e.g. deployments) or KIND/NAME", exit_code=2)
    if "/" in args[0]:
        out: dict[str, Target] = {}
        for arg in args:
            kind_name, sep, name = arg.partition("/")
            if not sep or not kind_name or not name or "/" in name:
                raise CliError(f"expected KIND/NAME, got {arg!r} (do not mix KIND NAME "
                               f"and KIND/NAME)", exit_code=2)
            k = resolve_kind(kind_name)
            prev = out.get(k.kind)
            out[k.kind] = Target(k, (*(prev.names if prev else ()), name))
        return list(out.values())
    kinds = [resolve_kind(k) for k in args[0].split(",") if k]
    if not kinds:
        raise CliError(f"no kind in {args[0]!r}", exit_code=2)
    if len(kinds) > 1 and (args[1:] or not many_kinds):
        raise CliError("several kinds take no NAME; use KIND/NAME to name objects",
                       exit_code=2)
    return [Target(k, args[1:]) for k in dict.fromkeys(kinds)]


def namespace_for(kind: Kind, namespace: str | None) -> str:
    """The namespace to address ``kind`` in: "" for cluster scope, else -n or default."""
    return (namespace or "default") if kind.namespaced else ""


def not_found(kind: Kind, namespace: str, name: str) -> str:
    where = f' in namespace "{namespace}"' if kind.namespaced else ""
    return f'{kind.plural} "{name}" not found{where}'
