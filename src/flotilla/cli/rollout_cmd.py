"""``flotilla rollout history|undo|status|pause|resume|abort|promote deploy/NAME``.

The commands read and write the rollout annotations of the Deployment's ResourceBinding
(their format: ``flotilla.resources.rollout_state``): history and status read them;
pause, resume, abort and promote leave a request there that the rollout controller
carries out (so the rules live in one place, the controller); undo writes an older pod
template back to the Deployment, which the controller sees as a new revision like any
other change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import click
from rich.live import Live
from rich.text import Text

from flotilla.cli.output import echo, table
from flotilla.cli.output import out as console
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.resources import rollout_state as st
from flotilla.resources.kinds import by_kind
from flotilla.resources.naming import binding_name

BINDING = by_kind("ResourceBinding")
DEPLOYMENT = by_kind("Deployment")
BAR = 24
#: Shown while the controller has not yet picked up the Deployment's latest change.
PENDING = "Pending"


def parse_target(text: str) -> str:
    kind, sep, name = text.rpartition("/")
    if sep and kind.lower() not in ("deploy", "deployment", "deployments"):
        raise CliError(f"{text!r}: rollouts are for Deployments (deploy/NAME)", exit_code=2)
    if not name:
        raise CliError(f"{text!r}: expected deploy/NAME", exit_code=2)
    return name


async def _binding(client: ResourceClient, namespace: str, name: str) -> Object:
    try:
        return await client.get(BINDING, namespace, binding_name("Deployment", name))
    except NotFoundError:
        raise CliError(f'deployment "{name}" in namespace "{namespace}" is not propagated '
                       "(no ResourceBinding): no revisions yet") from None


def _options(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option("-n", "--namespace", default="default", metavar="NS",
                      help="Namespace (default: default).")(fn)
    fn = click.argument("target", metavar="deploy/NAME")(fn)
    return connection_options(fn)


@click.group(epilog="""\b
Examples:
  flotilla rollout status deploy/shop          # follow until done; exit 1 on failure
  flotilla rollout history deploy/shop
  flotilla rollout undo deploy/shop --to-revision 2
  flotilla rollout pause deploy/shop ; flotilla rollout resume deploy/shop
""")
def rollout() -> None:
    """Follow, pause, promote and undo rollouts of propagated Deployments."""


@rollout.command()
@_options
def history(target: str, namespace: str, server: str | None, token: str | None) -> None:
    """Revisions of the pod template (last N), who changed it and when."""
    name = parse_target(target)
    binding = call(connect(server, token), lambda c: _binding(c, namespace, name))
    revisions, pins = st.history(binding), st.pins(binding)
    state = st.load(binding)
    rows = []
    for r in revisions:
        on = sorted(c for c, n in pins.items() if n == r.number)
        mark = "stable" if state and state.stable == r.number else ""
        rows.append([str(r.number), r.changed_at, r.changed_by, mark, ",".join(on) or "-",
                     r.cause or _summary(r.template)])
    table(["REVISION", "CHANGED", "BY", "", "CLUSTERS", "CHANGE"], rows)


def _summary(pod: Object) -> str:
    """What a person recognises a revision by: images and SHOP_VERSION-like env."""
    parts = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        parts.append(f"{c.get('name')}={c.get('image')}")
        parts += [f"{e['name']}={e.get('value', '')}" for e in c.get("env") or []
                  if "name" in e]
    return " ".join(parts)


@rollout.command()
@_options
@click.option("--to-revision", type=int, default=None, metavar="K",
              help="Revision to go back to (default: the one before the current).")
def undo(target: str, namespace: str, to_revision: int | None, server: str | None,
         token: str | None) -> None:
    """Put an earlier revision's pod template back (a new revision, applied at once)."""
    name = parse_target(target)
    conn = connect(server, token)

    async def work(client: ResourceClient) -> int:
        revisions = st.history(await _binding(client, namespace, name))
        if to_revision is None:
            if len(revisions) < 2:
                raise CliError(f"deploy/{name} has no earlier revision to go back to")
            wanted = revisions[-2]
        else:
            found = st.find(revisions, to_revision)
            if found is None:
                known = ", ".join(str(r.number) for r in revisions)
                raise CliError(f"deploy/{name} has no revision {to_revision} "
                               f"(kept: {known})")
            wanted = found

        def change(obj: Object) -> bool:
            if st.template_hash(st.pod_template(obj)) == wanted.hash:
                return False
            obj.setdefault("spec", {})["template"] = wanted.template
            notes = obj["metadata"].setdefault("annotations", {})
            notes[st.CHANGE_CAUSE] = f"undo to revision {wanted.number}"
            return True

        if await converge(client, DEPLOYMENT, namespace, name, change) is None:
            raise CliError(f'deployment "{name}" not found')
        return wanted.number

    number = call(conn, work)
    echo(f"deployment/{name} rolled back to revision {number}")


def _request(action: str, done: str) -> Callable[..., None]:
    @_options
    def command(target: str, namespace: str, server: str | None, token: str | None,
                **extra: bool) -> None:
        name = parse_target(target)
        wanted = "promote-full" if extra.get("full") else action

        async def work(client: ResourceClient) -> None:
            binding = await _binding(client, namespace, name)
            if st.load(binding) is None:
                raise CliError(f"deploy/{name}: no RolloutPolicy governs it")

            def change(obj: Object) -> bool:
                obj["metadata"].setdefault("annotations", {})[st.REQUEST] = wanted
                return True

            await converge(client, BINDING, namespace, binding["metadata"]["name"], change)

        call(connect(server, token), work)
        echo(f"deployment/{name} {done}")
    return command


rollout.command("pause", help="Hold the rollout where it is.")(_request("pause", "paused"))
rollout.command("resume", help="Go on after a pause (manual or `rollout pause`).")(
    _request("resume", "resumed"))
rollout.command("abort", help="Put every updated cluster back on the stable revision.")(
    _request("abort", "aborted"))
rollout.command("promote", help="Pass the current wave's gates (--full: every cluster now).")(
    click.option("--full", is_flag=True, help="Update every cluster at once.")(
        _request("promote", "promoted")))


@dataclass(frozen=True, slots=True)
class View:
    """What `rollout status` prints, from the binding alone."""

    lines: list[str]
    phase: str


def progress_bar(done: int, total: int) -> str:
    filled = round(BAR * done / total) if total else BAR
    return f"[{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} clusters"


def view(name: str, binding: Object, template: Object | None = None) -> View:
    """``template`` is the Deployment as it is now: until the controller has recorded
    its pod template as the rollout's revision, the state shown is an older rollout's,
    and must not end a `status --follow` (kubectl compares generations for the same
    reason)."""
    state = st.load(binding)
    pins = st.pins(binding)
    if template is not None:
        digest = st.template_hash(st.pod_template(template))
        current = st.find(st.history(binding), state.revision) if state else None
        latest = st.history(binding)
        recorded = current if state else (latest[-1] if latest else None)
        if recorded is None or recorded.hash != digest:
            return View([f"deploy/{name}: waiting for the rollout controller to record "
                         "the new pod template"], PENDING)
    if state is None:
        latest = st.history(binding)
        number = latest[-1].number if latest else 0
        return View([f"deploy/{name}: no RolloutPolicy; revision {number} goes to every "
                     "cluster at once"], st.SUCCEEDED)
    on_new = sorted(c for c, n in pins.items() if n == state.revision)
    total = len(pins)
    lines = [f"deploy/{name}: {state.phase}  revision {state.revision} "
             f"(stable {state.stable})  {progress_bar(len(on_new), total)}",
             f"  {state.message}"]
    for i, clusters in enumerate(state.waves):
        record = next((r for r in reversed(state.records) if r.wave == i), None)
        mark = record.result if record else ("running" if i == state.wave and
                                              state.phase == st.PROGRESSING else "")
        figures = ""
        if record and record.figures.get("requests"):
            f = record.figures
            figures = f"  requests={f['requests']} errorRate={f['errorRate']} " \
                f"p99={f['p99Seconds']}s"
        cells = ", ".join(f"{c}@r{pins.get(c, '?')}" for c in clusters) or "(none)"
        lines.append(f"  wave {i + 1}: {cells}  {mark}{figures}")
    if state.phase == st.FAILED and state.figures:
        lines.append(f"  gate figures: {state.figures}")
    lines.append("  clusters:")
    lines += [f"    {c}: revision {r} ({_why(state, c, r)})" for c, r in sorted(pins.items())]
    return View(lines, state.phase)


def _why(state: st.RolloutState, cluster: str, revision: int) -> str:
    """The controller's words for this cluster's pin; a state written before it kept
    them gets the plain fact."""
    if cluster in state.why:
        return state.why[cluster]
    if revision == state.stable:
        return "stable"
    return "being rolled out" if revision == state.revision else "an earlier revision"


@rollout.command()
@_options
@click.option("--follow/--no-follow", "-w", default=True,
              help="Follow until the rollout ends (default).")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Give up following after this many seconds (exit 1).")
def status(target: str, namespace: str, follow: bool, timeout: float, server: str | None,
           token: str | None) -> None:
    """Waves, clusters, revisions, gate figures and a progress bar; exits 1 when the
    rollout failed or was aborted, so a CI pipeline can gate on it."""
    name = parse_target(target)

    async def work(client: ResourceClient, show: Callable[[list[str]], None]) -> str:
        deadline = time.monotonic() + timeout
        shown: list[str] = []
        while True:
            binding = await _binding(client, namespace, name)
            try:
                template = await client.get(DEPLOYMENT, namespace, name)
            except NotFoundError:
                raise CliError(f'deployment "{name}" not found') from None
            v = view(name, binding, template)
            if v.lines != shown:
                show(v.lines)
                shown = v.lines
            if not follow or v.phase in st.DONE:
                return v.phase
            if time.monotonic() > deadline:
                raise CliError(f"deploy/{name}: still {v.phase} after {timeout:g}s")
            await asyncio.sleep(0.5)  # polling a remote state for a person, not a sync

    conn = connect(server, token)
    if follow and console.is_terminal:
        # On a terminal the block redraws in place; piped, each change is a new block
        # (what a CI log wants).
        with Live(Text(""), console=console, auto_refresh=False) as live:
            def redraw(lines: list[str]) -> None:
                live.update(Text("\n".join(lines)), refresh=True)
            phase = call(conn, lambda c: work(c, redraw))
    else:
        phase = call(conn, lambda c: work(c, lambda lines: echo("\n".join(lines))))
    if phase in (st.FAILED, st.ABORTED):
        raise CliError(f"deploy/{name}: rollout {phase.lower()}")
