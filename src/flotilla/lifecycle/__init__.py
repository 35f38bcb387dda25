"""One process lifecycle for every Flotilla process: `Component` and `serve`.

A process is a list of components started in order and stopped in reverse order; the
loops they spawn live in one `asyncio.TaskGroup`, so no task is ever left running
unawaited, a crash anywhere stops the whole process, and SIGINT/SIGTERM are handled in
exactly one place (`serve`). This package sits below every process package and imports
nothing else of Flotilla's.
"""

from flotilla.lifecycle.components import Loops, Step
from flotilla.lifecycle.serve import Component, FatalError, component_name, run, serve

__all__ = [
    "Component", "FatalError", "Loops", "Step", "component_name", "run", "serve",
]
