"""The Kafka bus: an idempotent producer, consumers that commit after processing and send
poison messages to a dead-letter topic, and explicit topic creation."""

from keel_core.bus.admin import ensure_topics
from keel_core.bus.consumer import EventConsumer, Handler, PoisonMessage
from keel_core.bus.deadletter import DeadLetterFailed
from keel_core.bus.metrics import BusMetrics
from keel_core.bus.outage import is_bus_outage
from keel_core.bus.producer import EventProducer

__all__ = [
    "BusMetrics",
    "DeadLetterFailed",
    "EventConsumer",
    "EventProducer",
    "Handler",
    "PoisonMessage",
    "ensure_topics",
    "is_bus_outage",
]
