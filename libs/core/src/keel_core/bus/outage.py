"""Which bus errors are an outage to wait out rather than a failure to report.

A write the broker could not take *now* (it is down or restarting, a partition has no leader,
too few in-sync replicas, the request timed out) succeeds once the cluster is back; a record
the broker refuses for what it is (too large, not authorized) never will. A caller that must
not lose work (the agent loop's sessions) parks on the first kind and fails on the second.
"""

from __future__ import annotations

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from keel_contracts.errors import Unavailable

_OUTAGES = (
    KafkaTimeoutError,
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    ConnectionError,
)


def is_bus_outage(exc: BaseException) -> bool:
    """True for an error that waiting can cure: a timeout or lost connection to the broker,
    any error aiokafka marks retriable, or a bus ``Unavailable``."""
    if isinstance(exc, (*_OUTAGES, Unavailable)):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
