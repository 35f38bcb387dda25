"""`flotilla up --prometheus`: a real Prometheus scraping every process `up` started.

The configuration is generated into ``<data-dir>/prometheus/``: one scrape job per kind
of process (API servers, agents, gateway, DNS), each reading its targets from a file
(``file_sd_configs``), so `up` can change who is scraped without a restart. The agents'
file is rewritten from the Clusters' ``spec.apiEndpoint`` while `up` runs (an agent
revived by chaos listens on a new port; a cluster that joins or leaves shows up or goes);
Prometheus picks the change up through inotify.

TLS where the target is TLS: the API servers and agents serve HTTPS with pairs from the
data dir's CA, which the jobs verify against (``tls_config.ca_file``). Their /metrics
needs no token (counts and latencies only, as `flotilla.agent.admin` explains), so no
credential is written for Prometheus. The gateway's and DNS's admin listeners are plain
HTTP on loopback, as they have always been.

Intervals are short (``SCRAPE_INTERVAL``, ``EVALUATION_INTERVAL``: 1 s) so that a dead
cluster fires its alert within seconds on a laptop; docs/observability.md says how to
lengthen them for a long-running setup.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

#: The shipped alert rules and dashboards (``deploy/`` at the repository's root).
DEPLOY_DIR = Path(__file__).resolve().parents[3] / "deploy"
ALERTS = DEPLOY_DIR / "prometheus" / "alerts.yml"
SCRAPE_INTERVAL = "1s"
EVALUATION_INTERVAL = "1s"
JOBS = ("flotilla-api", "flotilla-agent", "flotilla-gateway", "flotilla-dns")


def prometheus_binary() -> str:
    """Debian's ``prometheus`` (package prometheus), or a clear error naming it."""
    found = shutil.which("prometheus") or ("/usr/bin/prometheus"
                                           if os.access("/usr/bin/prometheus", os.X_OK)
                                           else None)
    if found is None:
        raise RuntimeError("--prometheus needs Prometheus: install Debian's package "
                           "'prometheus' (apt-get install prometheus)")
    return found


def config_dir(data_dir: Path) -> Path:
    return data_dir / "prometheus"


def targets_file(data_dir: Path, job: str) -> Path:
    return config_dir(data_dir) / "targets" / f"{job}.json"


def generate_config(data_dir: Path, ca: Path) -> Path:
    """Write prometheus.yml (and a copy of the shipped rules) and return its path."""
    folder = config_dir(data_dir)
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    if not ALERTS.is_file():
        raise RuntimeError(f"the shipped alert rules are missing: {ALERTS}")
    rules = folder / "alerts.yml"
    rules.write_text(ALERTS.read_text())
    tls = {"ca_file": str(ca.resolve())}

    def job(name: str, scheme: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "job_name": name, "scheme": scheme, "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [str(targets_file(data_dir, name).resolve())],
                                 "refresh_interval": "5s"}],
        }
        if scheme == "https":
            entry["tls_config"] = tls
        return entry

    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                   "evaluation_interval": EVALUATION_INTERVAL},
        "rule_files": [str(rules.resolve())],
        "scrape_configs": [job("flotilla-api", "https"), job("flotilla-agent", "https"),
                           job("flotilla-gateway", "http"), job("flotilla-dns", "http")],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for name in JOBS:
        if not targets_file(data_dir, name).exists():
            write_targets(data_dir, name, [])
    return path


def host_port(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def write_targets(data_dir: Path, job: str, groups: list[dict[str, Any]]) -> bool:
    """Replace ``job``'s target file atomically (Prometheus never reads half a file);
    False when it already says exactly that."""
    path = targets_file(data_dir, job)
    text = json.dumps(groups, indent=1, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def static_targets(data_dir: Path, state: dict[str, Any]) -> None:
    """The API servers, gateway and DNS: known once `up` has started them."""
    servers = [s["url"] for s in state.get("servers", [])] or [state["server"]]
    write_targets(data_dir, "flotilla-api", [{"targets": [host_port(u) for u in servers]}])
    for kind, job in (("gateway", "flotilla-gateway"), ("dns", "flotilla-dns")):
        admin = (state.get(kind) or {}).get("admin")
        write_targets(data_dir, job, [{"targets": [admin]}] if admin else [])


def agent_targets(data_dir: Path, clusters: list[dict[str, Any]]) -> bool:
    """One target per Cluster that publishes its agent's endpoint, labelled with its
    name and place; returns whether the file changed."""
    groups = []
    for c in sorted(clusters, key=lambda c: str(c["metadata"]["name"])):
        spec = c.get("spec") or {}
        endpoint = spec.get("apiEndpoint")
        if not endpoint:
            continue
        groups.append({"targets": [host_port(str(endpoint))],
                       "labels": {"cluster": c["metadata"]["name"],
                                  "region": str(spec.get("region") or ""),
                                  "zone": str(spec.get("zone") or "")}})
    return write_targets(data_dir, "flotilla-agent", groups)


def prometheus_argv(binary: str, data_dir: Path, config: Path, listen: str) -> list[str]:
    return [binary, f"--config.file={config.resolve()}",
            f"--storage.tsdb.path={(config_dir(data_dir) / 'data').resolve()}",
            f"--web.listen-address={listen}", "--storage.tsdb.retention.time=1d",
            "--log.level=warn"]
