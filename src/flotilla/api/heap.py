"""The server's garbage-collector settings: no full collection every few seconds.

A renewal's objects (the decoded body, the stored Lease, the informer's copy, the watch
event) live about a second. With CPython's default first threshold (700 allocations)
they are still alive at two young collections, so they reach the oldest generation,
and at 600 renewals/s that made a full collection, which walks every tracked object
of the heap with the event loop stopped, run every ~2.5 s for 50-500 ms (measured with
a `gc.callbacks` probe on this 2-core machine; ten in 25 s): each one a latency spike
for every request in flight. A first threshold of 20,000 lets them die young (one full
collection in the same 25 s), and `gc.freeze` after start-up takes the ~80,000 objects
of the imported code and schemas out of every later full walk.

Cyclic garbage is still collected; only how often young objects are looked at moves.
"""

from __future__ import annotations

import gc

#: Allocations between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Call once the server has started: freeze what start-up built, then collect the
    young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
