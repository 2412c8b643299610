"""The log-ordered ledger: a writer answers from the fold's verdict on its own record, which
every follower of the log reaches alike."""

from __future__ import annotations

import pytest

from keel_contracts.errors import Unavailable
from keel_contracts.events import BudgetSettled, Envelope
from keel_core.ordered_log import OrderedLog
from keel_core.testing import BusPublisher, FlakyPublisher, InMemoryBus, InMemoryFollower

TOPIC = "keel.test.ordered"


class Counter:
    """A fold: record number n (in log order) gets verdict n; the same on every replica."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, envelope: Envelope) -> int:
        self.seen.append(envelope.id)
        return len(self.seen)


def record() -> Envelope:
    return Envelope.wrap(BudgetSettled(reservation_id="r", at=0.0), source="t", session_id="k")


async def test_each_writer_gets_the_verdict_of_its_own_record_and_replicas_agree() -> None:
    bus = InMemoryBus()
    folds = [Counter(), Counter()]
    logs = [OrderedLog(InMemoryFollower(bus, TOPIC), BusPublisher(bus), TOPIC, f) for f in folds]
    await logs[0].record(record(), key="k")  # written before either started: folded at start
    for log in logs:
        assert await log.start() == 1
    first = await logs[0].append(record(), key="k")
    second = await logs[1].append(record(), key="k")
    assert (first, second) == (2, 3)
    await logs[0].append(record(), key="k")  # so logs[1] has surely folded record 3 as well
    assert folds[0].seen[:3] == folds[1].seen[:3]


async def test_a_refused_write_or_a_record_never_folded_is_unavailable() -> None:
    bus = InMemoryBus()
    flaky = FlakyPublisher(BusPublisher(bus))
    log = OrderedLog(InMemoryFollower(bus, TOPIC), flaky, TOPIC, Counter(), wait_s=0.2)
    with pytest.raises(Unavailable, match="not being followed"):
        await log.append(record(), key="k")
    await log.start()
    flaky.fail_next(1)
    with pytest.raises(Unavailable, match="not written"):
        await log.append(record(), key="k")
    # Written where no follower of this log reads: never folded, so no verdict.
    elsewhere = OrderedLog(
        InMemoryFollower(bus, TOPIC), BusPublisher(InMemoryBus()), TOPIC, Counter(), wait_s=0.2
    )
    await elsewhere.start()
    with pytest.raises(Unavailable, match="not folded within 0.2 s"):
        await elsewhere.append(record(), key="k")
