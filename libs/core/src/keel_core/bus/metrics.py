"""Consumer and producer metrics, registered on the registry the service passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "keel_bus_messages_consumed",
            "Messages handled",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "keel_bus_messages_dead_lettered",
            "Messages sent to a DLQ",
            ["topic"],
            registry=registry,
        )
        self.handle_seconds = Histogram(
            "keel_bus_handle_seconds",
            "Time to handle one message",
            ["topic"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.consumer_lag = Gauge(
            "keel_bus_consumer_lag",
            "Records behind the partition end",
            ["topic", "partition"],
            registry=registry,
        )
        self.produced = Counter(
            "keel_bus_messages_produced", "Messages produced", ["topic"], registry=registry
        )
