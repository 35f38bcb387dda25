"""``flotilla logs``: one pod's log, or every pod of a Deployment or a Job (its finished
pods too: a member keeps them, docs/batch.md) in every cluster as one stream, each line
prefixed ``[cluster/pod]`` (like stern).

The logs stay where they are written: each cluster's agent serves them
(`flotilla.agent.admin`, ``/logs/{ns}/{pod}``, streamed with ``follow=1``), found through
the Cluster's ``spec.apiEndpoint``, with the caller's own token and CA. With ``-f`` the
pods are listed again every `RESCAN` seconds, so a pod created after the command
started (a scale-up, a failover, a rollout) joins the stream, and one that goes away
leaves it. A cluster that does not answer is named on stderr and retried; the others
keep streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import httpx

from flotilla.cli.config import Connection
from flotilla.cli.members import _clusters
from flotilla.cli.session import CliError, call, connection_options
from flotilla.client.base import ResourceClient
from flotilla.client.http import verify_for
from flotilla.resources.kinds import by_kind
from flotilla.resources.views.cronjob import owner_name

JOB = by_kind("Job")
#: Seconds between two listings of the pods while following.
RESCAN = 1.0
_COLOURS = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)
_WORKLOAD_KINDS = {"deploy": "Deployment", "deployment": "Deployment",
                   "deployments": "Deployment", "sts": "StatefulSet",
                   "statefulset": "StatefulSet", "statefulsets": "StatefulSet",
                   "job": "Job", "jobs": "Job",
                   "cronjob": "CronJob", "cronjobs": "CronJob", "cj": "CronJob"}


@dataclass(frozen=True, slots=True)
class Source:
    cluster: str
    endpoint: str
    pod: str
    container: str

    def prefix(self, colour: bool, several_containers: bool) -> str:
        label = f"{self.cluster}/{self.pod}"
        if several_containers:
            label += f"/{self.container}"
        if not colour:
            return f"[{label}] "
        code = _COLOURS[zlib.crc32(label.encode()) % len(_COLOURS)]
        return f"\x1b[{code}m[{label}]\x1b[0m "


def parse_target(text: str) -> tuple[str | None, str]:
    """``deploy/shop`` -> ("Deployment", "shop"); a bare pod name -> (None, name)."""
    kind, sep, name = text.partition("/")
    if not sep:
        return None, text
    if kind.lower() in ("pod", "pods", "po"):
        return None, name
    workload = _WORKLOAD_KINDS.get(kind.lower())
    if workload is None or not name:
        raise CliError(f"logs: cannot follow {text!r}: give a pod name, deploy/NAME, "
                       "statefulset/NAME, job/NAME or cronjob/NAME", exit_code=2)
    return workload, name


def since_seconds(value: str | None) -> float | None:
    from flotilla.resources.models.common import parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise CliError(f"--since: {exc}", exit_code=2) from None
    if seconds <= 0:
        raise CliError(f"--since: must be more than 0, got {value!r}", exit_code=2)
    return seconds


def matches(pod: dict[str, Any], namespace: str, kind: str | None, name: str,
            runs: frozenset[str] = frozenset()) -> bool:
    """Whether an agent's pod is the target's: the pod itself, a pod of the workload,
    or (a CronJob) a pod of one of its Jobs, ``runs``."""
    if pod.get("namespace") != namespace:
        return False
    if kind is None:
        return pod.get("name") == name
    if kind == "CronJob":
        return pod.get("owner") in {f"Job/{run}" for run in runs}
    return pod.get("owner") == f"{kind}/{name}"


def cronjob_runs(conn: Connection, namespace: str, name: str) -> frozenset[str]:
    """The Jobs a CronJob started that the control plane still keeps (its history)."""

    async def work(client: ResourceClient) -> frozenset[str]:
        jobs = (await client.list(JOB, namespace)).items
        return frozenset(str(j["metadata"]["name"]) for j in jobs if owner_name(j) == name)

    return call(conn, work)


class Merger:
    """Finds the sources (cluster, pod, container) and streams their lines to ``out``."""

    def __init__(self, conn: Connection, clusters: list[dict[str, Any]], namespace: str,
                 kind: str | None, name: str, container: str | None, tail: int | None,
                 since: float | None, colour: bool, out: Callable[[str], None],
                 runs: frozenset[str] = frozenset()) -> None:
        self.conn, self.clusters, self.runs = conn, clusters, runs
        self.namespace, self.kind, self.name = namespace, kind, name
        self.container, self.tail, self.since = container, tail, since
        self.colour, self.out = colour, out
        self.headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
        self._warned: set[str] = set()

    def warn(self, message: str) -> None:
        if message not in self._warned:  # once per problem, not once per rescan
            self._warned.add(message)
            click.echo(f"warning: {message}", err=True)

    async def sources(self, http: httpx.AsyncClient) -> list[Source]:
        async def one(c: dict[str, Any]) -> list[Source]:
            cluster = c["metadata"]["name"]
            endpoint = str((c.get("spec") or {}).get("apiEndpoint") or "")
            if not endpoint:
                self.warn(f"{cluster}: publishes no agent endpoint")
                return []
            try:
                r = await http.get(endpoint.rstrip("/") + "/pods", headers=self.headers,
                                   timeout=3.0)
                r.raise_for_status()
            except httpx.HTTPError as exc:
                self.warn(f"{cluster}: cannot list pods at {endpoint}: {exc}")
                return []
            found = []
            for pod in r.json():
                if not matches(pod, self.namespace, self.kind, self.name, self.runs):
                    continue
                names = [str(ct["name"]) for ct in pod.get("containers") or []]
                if self.container is not None:
                    names = [n for n in names if n == self.container]
                found += [Source(cluster, endpoint, str(pod["name"]), n) for n in names]
            return found

        lists = await asyncio.gather(*(one(c) for c in self.clusters))
        return sorted({s for group in lists for s in group},
                      key=lambda s: (s.cluster, s.pod, s.container))

    async def stream(self, http: httpx.AsyncClient, source: Source, follow: bool,
                     several: bool) -> None:
        params = {"container": source.container}
        if self.tail is not None:
            params["tail"] = str(self.tail)
        if self.since is not None:
            params["sinceSeconds"] = str(self.since)
        if follow:
            params["follow"] = "1"
        prefix = source.prefix(self.colour, several)
        url = f"{source.endpoint.rstrip('/')}/logs/{self.namespace}/{source.pod}"
        pending = b""
        try:
            async with http.stream("GET", url, params=params, headers=self.headers,
                                   timeout=httpx.Timeout(5.0, read=None)) as r:
                if r.status_code >= 400:
                    await r.aread()
                    self.warn(f"{source.cluster}/{source.pod}: {r.text.strip()}")
                    return
                async for chunk in r.aiter_bytes():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self.out(prefix + line.decode(errors="replace"))
        except httpx.HTTPError as exc:
            self.warn(f"{source.cluster}/{source.pod}: log stream ended: {exc}")
        if pending:
            self.out(prefix + pending.decode(errors="replace"))

    async def run(self, follow: bool) -> int:
        # Every agent's pair comes from the API server's CA: one client verifies all.
        first = next((str((c.get("spec") or {}).get("apiEndpoint") or "")
                      for c in self.clusters), self.conn.server)
        async with httpx.AsyncClient(verify=verify_for(first or self.conn.server,
                                                       self.conn.ca)) as http:
            sources = await self.sources(http)
            if not sources and not follow:
                raise CliError(f"no pods of {self._what()} in "
                               f"{len(self.clusters)} cluster(s)")
            several = self.container is None and \
                len({s.container for s in sources}) > 1
            if not follow:
                for s in sources:
                    await self.stream(http, s, False, several)
                return 0
            running: dict[Source, asyncio.Task[None]] = {}
            while True:
                for s in sources:
                    if s not in running:  # a stream that ended stays: its pod is gone
                        running[s] = asyncio.create_task(self.stream(http, s, True, several))
                await asyncio.sleep(RESCAN)
                sources = await self.sources(http)
                live = set(sources)
                for s in [s for s in running if s not in live]:
                    running.pop(s).cancel()

    def _what(self) -> str:
        return f"{self.kind}/{self.name}" if self.kind else f"pod {self.name}"


@click.command(epilog="""\b
Examples:
  flotilla logs deploy/shop                      # every shop pod in every cluster
  flotilla logs deploy/shop --all-clusters -f    # and follow, new pods included
  flotilla logs deploy/shop --cluster east-1 --since 10m --tail 20
  flotilla logs job/shards --all-clusters        # every pod of a Job, finished ones too
  flotilla logs cronjob/report                   # the pods of its runs still kept
  flotilla logs shop-6f7c9-x2k4q --cluster east-1 -c shop
Each line is prefixed [cluster/pod] (coloured on a terminal; --color to choose).
""")
@click.argument("target")
@click.option("--cluster", "cluster", help="Only this member cluster (default: every one).")
@click.option("--all-clusters", is_flag=True,
              help="Every member cluster (the default; says so explicitly).")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", help="Only this container (default: every one).")
@click.option("-f", "--follow", is_flag=True,
              help="Keep streaming, and pick up pods created meanwhile, until Ctrl-C.")
@click.option("--since", metavar="DURATION",
              help="Only containers that wrote in the last DURATION (10s, 5m, 1h); "
                   "lines carry no time, so --tail bounds how much of each is shown.")
@click.option("--tail", type=click.IntRange(min=0), help="The last N lines of each pod.")
@click.option("--color", "colour", type=click.Choice(["auto", "always", "never"]),
              default="auto", show_default=True, help="Colour the [cluster/pod] prefix.")
@connection_options
def logs(target: str, cluster: str | None, all_clusters: bool, namespace: str,
         container: str | None, follow: bool, since: str | None, tail: int | None,
         colour: str, server: str | None, token: str | None) -> None:
    """Print the logs of a pod, or of every pod of a Deployment (deploy/NAME), a Job
    (job/NAME) or a CronJob's kept runs (cronjob/NAME, as they were when it started)
    across clusters, merged into one stream with a [cluster/pod] prefix on every line."""
    if cluster and all_clusters:
        raise CliError("logs: give --cluster or --all-clusters, not both", exit_code=2)
    kind, name = parse_target(target)
    window = since_seconds(since)
    clusters, conn = _clusters(server, token, cluster)
    use_colour = colour == "always" or (colour == "auto" and sys.stdout.isatty()
                                        and os.environ.get("NO_COLOR") is None)

    def out(line: str) -> None:
        click.echo(line)

    runs = cronjob_runs(conn, namespace, name) if kind == "CronJob" else frozenset()
    merger = Merger(conn, clusters, namespace, kind, name, container, tail, window,
                    use_colour, out, runs)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(merger.run(follow))
