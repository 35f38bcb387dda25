"""`serve`: start components in order, stop them in reverse, one TaskGroup, one signal
handler.

The rules every process gets from here instead of writing them again:

- ``start`` returns once a component is ready (its socket listens, its claim is held);
  the next one starts only then, so a later component may rely on an earlier one.
- Every loop a component spawns goes into the one `asyncio.TaskGroup`: a loop that
  raises stops the whole process (the group cancels the rest), and nothing outlives
  `serve`.
- SIGINT/SIGTERM stop the process at any phase: during start-up they cancel the start
  that is under way (a start may wait on the network); repeated signals while stopping
  are ignored, the stop already under way finishes.
- Components are stopped in reverse order, each bounded by ``stop_timeout``, and every
  component whose start was entered is stopped, also when a later one failed to start,
  crashed or was cancelled. ``stop`` therefore must be safe after a partial start.
- `serve` returns when stopped by a signal and raises the error (unwrapped when it is
  the only one) when a component failed; `run` is the blocking entry point.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol

log = logging.getLogger("flotilla.lifecycle")

#: How long one component may take to stop before the process gives up on it.
DEFAULT_STOP_TIMEOUT = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Component(Protocol):
    """A part of a process with a start that returns once it is ready, and a stop."""

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        """Return once ready to serve; spawn long-running loops into ``tasks``."""

    async def stop(self) -> None:
        """Release what `start` took; safe to call after a failed or partial start."""


class FatalError(Exception):
    """A failure the operator can act on (a refused identity, an address in use): the
    entry points report its message as one line, without a traceback."""


class _Stopped(Exception):
    """Raised inside the TaskGroup after every component stopped: cancels what is left."""


def component_name(component: object) -> str:
    name = getattr(component, "name", None)
    return name if isinstance(name, str) and name else type(component).__name__


async def serve(components: Sequence[Component], *,
                signals: Sequence[int] = STOP_SIGNALS,
                stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """Run ``components`` until a signal in ``signals``, a crash or cancellation."""
    try:
        await _serve(components, signals, stop_timeout)
    except BaseExceptionGroup as group:
        errors = _leaves(group)
        if len(errors) == 1:
            raise errors[0] from None
        raise


async def _serve(components: Sequence[Component], signals: Sequence[int],
                 stop_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    received: list[int] = []
    starting = True
    stop_requested = asyncio.Event()

    def on_signal(sig: int) -> None:
        if received:
            log.info("%s again: already stopping", signal.Signals(sig).name)
            return
        received.append(sig)
        log.info("%s: stopping", signal.Signals(sig).name)
        if starting:
            main.cancel()  # a start may be waiting on the network: do not wait for it
        stop_requested.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    started: list[Component] = []
    stop_errors: list[Exception] = []
    try:
        async with asyncio.TaskGroup() as tasks:
            try:
                for component in components:
                    started.append(component)
                    await component.start(tasks)
                    log.debug("%s started", component_name(component))
                starting = False
                await stop_requested.wait()
            except asyncio.CancelledError:
                if not received:
                    raise  # a loop crashed (the group cancels us) or our caller cancelled
                main.uncancel()
            finally:
                starting = False
                stop_errors = await _stop_all(reversed(started), stop_timeout)
            raise _Stopped
    except* _Stopped:
        pass
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    if stop_errors:
        raise ExceptionGroup("components failed to stop", stop_errors)


async def _stop_all(components: Iterable[Component], timeout: float) -> list[Exception]:
    errors: list[Exception] = []
    for component in components:
        name = component_name(component)
        try:
            async with asyncio.timeout(timeout):
                await component.stop()
        except TimeoutError as exc:
            log.error("%s did not stop within %gs", name, timeout)
            errors.append(RuntimeError(f"{name} did not stop within {timeout:g}s"))
            errors[-1].__cause__ = exc
        except Exception as exc:
            log.error("stopping %s failed: %s", name, exc, exc_info=exc)
            errors.append(exc)
    return errors


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


def run(main: Callable[[], Coroutine[Any, Any, None]], *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Blocking entry point: run ``main`` (which awaits `serve`) on a fresh event loop.

    Errors propagate to the caller, which turns them into the exit status; a crash that
    is not a `FatalError` is logged here with its traceback first, so that the process
    log says which loop failed and where.
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except (FatalError, OSError):
        raise
    except BaseExceptionGroup as group:
        for exc in _leaves(group):
            log.error("stopped by an error: %s", exc, exc_info=exc)
        raise
    except Exception as exc:
        log.error("stopped by an error: %s", exc, exc_info=exc)
        raise
