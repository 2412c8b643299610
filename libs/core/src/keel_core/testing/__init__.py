"""Test doubles for code built on keel_core: an in-memory runtime and bus for component tests,
an in-memory publisher and audit for unit tests, and a clock a test moves by hand.
Integration tests use the real broker instead (see the root conftest.py)."""

from keel_core.testing.bus import (
    MAX_RECORD_BYTES,
    BusPublisher,
    BusRecord,
    InMemoryBus,
    InMemoryConsumer,
    InMemoryFollower,
    InMemoryTable,
    SendFailed,
)
from keel_core.testing.clock import FakeClock
from keel_core.testing.publisher import (
    FlakyPublisher,
    InMemoryPublisher,
    SentRecord,
    in_memory_audit,
)
from keel_core.testing.runtime import InMemoryRuntime

__all__ = [
    "MAX_RECORD_BYTES",
    "BusPublisher",
    "BusRecord",
    "FakeClock",
    "FlakyPublisher",
    "InMemoryBus",
    "InMemoryConsumer",
    "InMemoryFollower",
    "InMemoryPublisher",
    "InMemoryRuntime",
    "InMemoryTable",
    "SendFailed",
    "SentRecord",
    "in_memory_audit",
]
