"""The agent's holder identity says which process holds a cluster, and whether it is
gone: what lets a restarted agent take over at once after a crash."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from flotilla.agent.heartbeat import agent_identity, holder_is_gone, holder_process


def test_identity_names_this_process_and_is_new_each_time() -> None:
    first, second = agent_identity("a-b"), agent_identity("a-b")
    assert first != second
    assert first.startswith("agent-a-b-")
    assert holder_process(first) == (socket.gethostname(), os.getpid())


def test_a_holder_whose_process_exited_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    dead = f"agent-c-{proc.pid}-00000000@{socket.gethostname()}"
    assert holder_is_gone(dead)


def test_a_live_holder_another_host_or_another_format_is_not_gone() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as proc:
        try:
            assert not holder_is_gone(f"agent-c-{proc.pid}-00000000@{socket.gethostname()}")
        finally:
            proc.kill()
    assert not holder_is_gone(agent_identity("c"))  # this very process
    assert not holder_is_gone("agent-c-1-00000000@some-other-host")
    assert not holder_is_gone("agent-c-12345")  # the old format: cannot tell
