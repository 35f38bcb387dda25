"""`serve`: components start in order and stop in reverse, whatever ends the process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from flotilla.lifecycle import Loops, serve


class Part:
    """A component that records what happens to it in a shared journal."""

    def __init__(self, name: str, journal: list[str], *, fail_start: bool = False,
                 block_start: bool = False, hang_stop: bool = False,
                 loop: str | None = None) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.block_start = block_start
        self.hang_stop = hang_stop
        self.loop = loop  # "crash", "sigterm", "forever"

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        self.journal.append(f"start {self.name}")
        if self.loop is not None:
            tasks.create_task(self._loop())
            await asyncio.sleep(0)  # the loop is running before the next part starts
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        if self.block_start:
            await asyncio.Event().wait()
        self.journal.append(f"ready {self.name}")

    async def _loop(self) -> None:
        try:
            await asyncio.sleep(0)
            if self.loop == "crash":
                raise RuntimeError(f"{self.name} crashed")
            if self.loop == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.journal.append(f"loop of {self.name} cancelled")
            raise

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.hang_stop:
            await asyncio.Event().wait()


async def test_started_in_order_and_stopped_in_reverse_on_sigterm() -> None:
    journal: list[str] = []
    parts = [Part("a", journal), Part("b", journal, loop="forever"),
             Part("c", journal, loop="sigterm")]
    await asyncio.wait_for(serve(parts), 10)
    assert journal[:6] == ["start a", "ready a", "start b", "ready b", "start c", "ready c"]
    assert [e for e in journal[6:] if e.startswith("stop")] == ["stop c", "stop b", "stop a"]
    assert {e for e in journal if "cancelled" in e} == {"loop of b cancelled",
                                                        "loop of c cancelled"}
    # The handlers are gone with serve: SIGTERM is the default (fatal) again.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_a_crashing_loop_stops_every_component_and_raises_its_error() -> None:
    journal: list[str] = []
    parts = [Part("a", journal, loop="forever"), Part("b", journal),
             Part("c", journal, loop="crash")]
    with pytest.raises(RuntimeError, match="c crashed"):
        await asyncio.wait_for(serve(parts), 10)
    assert [e for e in journal if e.startswith("stop")] == ["stop c", "stop b", "stop a"]
    assert "loop of a cancelled" in journal


async def test_a_failed_start_stops_the_components_started_before_it() -> None:
    journal: list[str] = []
    parts = [Part("a", journal, loop="forever"), Part("b", journal),
             Part("c", journal, fail_start=True), Part("d", journal)]
    with pytest.raises(RuntimeError, match="c cannot start"):
        await asyncio.wait_for(serve(parts), 10)
    assert "start d" not in journal
    assert [e for e in journal if e.startswith("stop")] == ["stop c", "stop b", "stop a"]
    assert "loop of a cancelled" in journal


async def test_a_signal_during_a_start_that_blocks_stops_everything() -> None:
    journal: list[str] = []
    parts = [Part("a", journal, loop="sigterm"), Part("b", journal, block_start=True),
             Part("c", journal)]
    await asyncio.wait_for(serve(parts), 10)  # returns: stopped by the signal
    assert "ready b" not in journal
    assert "start c" not in journal
    assert [e for e in journal if e.startswith("stop")] == ["stop b", "stop a"]


async def test_cancelling_serve_stops_everything_and_propagates() -> None:
    journal: list[str] = []
    started = asyncio.Event()

    class Announce(Part):
        async def start(self, tasks: asyncio.TaskGroup) -> None:
            await super().start(tasks)
            started.set()

    task = asyncio.create_task(serve([Part("a", journal, loop="forever"),
                                      Announce("b", journal)]))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert [e for e in journal if e.startswith("stop")] == ["stop b", "stop a"]
    assert "loop of a cancelled" in journal


async def test_a_stop_that_hangs_is_bounded_and_the_rest_still_stop() -> None:
    journal: list[str] = []
    parts = [Part("a", journal), Part("b", journal, hang_stop=True),
             Part("c", journal, loop="sigterm")]
    with pytest.raises(RuntimeError, match=r"b did not stop within 0\.3s"):
        await asyncio.wait_for(serve(parts, stop_timeout=0.3), 10)
    assert [e for e in journal if e.startswith("stop")] == ["stop c", "stop b", "stop a"]


async def test_loops_are_cancelled_by_their_component_before_earlier_ones_stop() -> None:
    journal: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            journal.append("loop cancelled")
            raise

    await asyncio.wait_for(serve([Part("store", journal), Loops("loops", [("x", forever)]),
                                  Part("http", journal, loop="sigterm")]), 10)
    stops = [e for e in journal if e.startswith("stop") or e == "loop cancelled"]
    assert stops == ["stop http", "loop cancelled", "stop store"]


_PROCESS = """
import asyncio, logging, sys
from flotilla.lifecycle import Loops, Step, run, serve
logging.basicConfig(level=logging.INFO)

async def loop():
    if sys.argv[1] == "crash":
        raise RuntimeError("the loop broke")
    await asyncio.Event().wait()

async def main():
    await serve([Step("resource", stop=lambda: print("resource stopped", flush=True)),
                 Step("ready", start=lambda: print("ready", flush=True)),
                 Loops("loops", [("loop", loop)])])

run(main)
"""


def _process(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _PROCESS, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_process_whose_loop_crashes_exits_non_zero_with_the_error_logged() -> None:
    proc = _process("crash")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "resource stopped" in out
    assert "stopped by an error: the loop broke" in err


def test_a_process_stopped_by_sigterm_exits_0_after_stopping_everything() -> None:
    proc = _process("forever")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "resource stopped" in out
    assert "SIGTERM: stopping" in err
