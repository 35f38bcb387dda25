"""Talking to member clusters' agents: live pods, nodes, logs and chaos.

An agent publishes its endpoint as the Cluster's ``spec.apiEndpoint``; the same bearer
token as the API's is accepted there (see `flotilla.agent.admin`). The endpoint serves
HTTPS with a certificate from the same CA as the API server, so ``ca`` is the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from flotilla.client.http import tls_problem, verify_for


class MemberError(RuntimeError):
    pass


def agent_call(endpoint: str, token: str | None, method: str, path: str,
               params: dict[str, str] | None = None, timeout: float = 5.0,
               ca: Path | None = None) -> Any:
    """One call to an agent, verified against ``ca`` (see `flotilla.client.http.verify_for`);
    errors become one `MemberError` line."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, endpoint.rstrip("/") + path, headers=headers,
                          params=params, timeout=timeout, verify=verify_for(endpoint, ca))
    except httpx.TimeoutException:
        raise MemberError(f"the agent at {endpoint} did not answer in {timeout:g}s "
                          "(is the cluster paused?)") from None
    except httpx.HTTPError as exc:
        problem = tls_problem(exc)
        if problem is not None:
            raise MemberError(f"TLS to the agent at {endpoint} failed (CA "
                              f"{ca or 'of the system'}): {problem}") from None
        raise MemberError(f"cannot reach the agent at {endpoint}: {exc}") from None
    if r.status_code >= 400:
        try:
            message = r.json().get("message", r.text)
        except ValueError:
            message = r.text
        raise MemberError(f"agent at {endpoint}: {message}")
    if r.headers.get("content-type", "").startswith("application/json"):
        return r.json()
    return r.text
