"""The cycle collector's pauses are measured, and the start-up heap is taken out of its walk."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from keel_core.gc_pauses import GcPauses, freeze_startup_heap


def pauses_counted(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("keel_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_every_collection_is_observed_while_installed_and_none_after() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    pauses.install()
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        pauses.uninstall()
    assert pauses_counted(registry, "2") >= 1
    assert pauses_counted(registry, "0") >= 1
    before = pauses_counted(registry, "2")
    gc.collect(2)
    assert pauses_counted(registry, "2") == before


def test_the_start_up_heap_is_frozen_and_the_next_full_collection_walks_less() -> None:
    kept = [[f"entry {i}"] for i in range(20_000)]  # a table loaded at start, say (lists: tracked)
    walked = {id(o) for o in gc.get_objects()}
    assert id(kept[0]) in walked
    try:
        assert freeze_startup_heap() >= len(kept)
        # The frozen objects are no longer in any generation the collector walks.
        walked = {id(o) for o in gc.get_objects()}
        assert id(kept[0]) not in walked
        assert id(kept[-1]) not in walked
    finally:
        gc.unfreeze()
