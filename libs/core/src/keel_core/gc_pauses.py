"""Python's cycle collector as a service sees it: how long each collection stops the process,
and a start-up heap that later collections no longer walk.

A collection of the oldest generation walks every tracked object the process holds, and while
it runs nothing else does: no step, no gRPC answer, no acknowledgement read. A service holds
its largest heap from start-up on (a compacted table loaded, a policy compiled, a model's
tokenizer), so each full collection pays again for objects that will live as long as the
process. ``freeze_startup_heap`` moves them out of the collector's sight once the service has
started (``gc.freeze``: they are still freed by reference counting when dropped; only cycles
among them would wait), and ``GcPauses`` records every pause in a histogram, so a tail
latency caused by the collector shows up as such (``keel_gc_pause_seconds``).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

# From a tenth of a millisecond (a young collection) to a quarter of a second (a full one on a
# large heap).
BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class GcPauses:
    """Observes every collection while installed (``install``/``uninstall``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pauses = Histogram(
            "keel_gc_pause_seconds",
            "Time the cycle collector stopped the process, per collection",
            ["generation"],
            buckets=BUCKETS,
            registry=registry,
        )
        self._children = [self.pauses.labels(str(generation)) for generation in range(3)]
        self._started = 0.0

    def install(self) -> None:
        if self._observe not in gc.callbacks:
            gc.callbacks.append(self._observe)

    def uninstall(self) -> None:
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif phase == "stop" and self._started:
            generation = min(int(info.get("generation", 2)), 2)
            self._children[generation].observe(time.perf_counter() - self._started)
            self._started = 0.0


def freeze_startup_heap() -> int:
    """Collect once, then move everything alive into the permanent generation; returns how
    many objects the collector will no longer walk."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
