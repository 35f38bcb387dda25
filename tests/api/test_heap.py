"""`flotilla.api.heap.settle`: the server's collector settings (see its docstring)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flotilla.api import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_start_up_and_collects_young_objects_less_often() -> None:
    _, middle, old = gc.get_threshold()
    gc.unfreeze()
    heap.settle()
    assert gc.get_freeze_count() > 1000  # this process's imports, at least
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, middle, old)
    assert gc.isenabled()
