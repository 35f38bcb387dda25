"""Failover: move replicas off a dead, hung or failing cluster, and back.

    timers.py    which toleration, purge mode and budget apply to a binding (pure)
    decide.py    which clusters to evict, which eviction tasks are done (pure)
    unhealthy.py since when a workload is Unhealthy per cluster, as kept on the binding
    controller.py  the reconciler that writes those decisions onto ResourceBindings

The same decisions answered without writing anything (``flotilla what-if``) are
`flotilla.scheduler.whatif`: pure, so the CLI can run them without the controllers.

The controller only edits ``spec.clusters`` and ``spec.gracefulEvictionTasks`` of a
ResourceBinding; the scheduler (which leaves evicting clusters out of its input) and the
renderer (which keeps an evicting cluster's Work until its task is gone) do the rest,
so every step is visible on the binding and in its Events.
"""
