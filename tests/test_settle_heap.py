"""A worker settles its heap before polling (`running.settle_heap`): what start-up made is
frozen out of the collector's sight, and young objects are collected less often."""

from __future__ import annotations

import gc

from volume_manage.workers.running import GC_YOUNG_THRESHOLD, settle_heap


def test_start_up_objects_are_frozen_and_the_young_threshold_raised() -> None:
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000  # modules, the SDK: all of start-up
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
