"""A broker that cannot take a write now is an outage to wait out; a refused record is not."""

from __future__ import annotations

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    TopicAuthorizationFailedError,
)

from keel_contracts.errors import Unavailable
from keel_core.bus import is_bus_outage


def test_timeouts_lost_connections_and_retriable_errors_are_outages() -> None:
    for exc in (
        KafkaTimeoutError(),
        KafkaConnectionError("gone"),
        NotEnoughReplicasError(),
        Unavailable("bus"),
    ):
        assert is_bus_outage(exc), exc


def test_a_record_refused_for_what_it_is_is_not() -> None:
    for exc in (MessageSizeTooLargeError(), TopicAuthorizationFailedError(), ValueError("bug")):
        assert not is_bus_outage(exc), exc
