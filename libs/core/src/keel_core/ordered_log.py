"""A ledger whose verdicts come from the order of a Kafka log, not from a lock.

Replicas that must agree on "does this still fit?" (budgets, quotas) each append their request
to a topic keyed so that every request that could conflict lands on one partition, and then
wait until their own follower has folded the log up to that request. The fold is a pure
function of the records in log order, so every replica reaches the same verdict for every
record, and the one that wrote it answers from it: exact across replicas with no owner, no
lock and no second round trip (ADR 0015). A restart folds the topic from the beginning.

What is generic lives here (append, wait for one's own record, time out); what fits and what a
verdict is stays with the user's fold (e.g. the LLM gateway's ``BudgetFold``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from keel_contracts.errors import Unavailable
from keel_contracts.events import Envelope
from keel_core.bus.producer import Publisher
from keel_core.runtime import Follower

log = logging.getLogger(__name__)

V = TypeVar("V")

# The fold: one record in log order -> the verdict for it (None for records that ask nothing).
Fold = Callable[[Envelope], V]


class OrderedLog(Generic[V]):
    """Append a record and get the fold's verdict for it once the log has ordered it.

    Args:
        follower: reads every partition of ``topic`` (no consumer group: every replica folds
            everything).
        producer: the service's acks=all, idempotent producer: a record acknowledged is one
            every replica will fold, exactly once.
        topic: the log.
        fold: applied to every record once, in offset order within a partition.
        wait_s: how long ``append`` waits for its record to come back through the follower
            before answering ``Unavailable`` (the record may still be folded later: the
            fold's own expiry has to cope with a writer that gave up).
    """

    def __init__(
        self,
        follower: Follower,
        producer: Publisher,
        topic: str,
        fold: Fold[V],
        *,
        wait_s: float = 10.0,
    ) -> None:
        self._follower = follower
        self._producer = producer
        self._topic = topic
        self._fold = fold
        self._wait_s = wait_s
        self._waiting: dict[str, asyncio.Future[V]] = {}
        self._started = False

    async def start(self) -> int:
        """Fold everything the topic holds, then follow it; how many records were folded."""
        loaded = await self._follower.load()
        for envelope in loaded:
            self._apply_one(envelope)
        self._follower.follow(self._apply)
        self._started = True
        log.info("%s: %d records folded at start", self._topic, len(loaded))
        return len(loaded)

    async def append(self, envelope: Envelope, key: str) -> V:
        """Write ``envelope`` (acknowledged by all in-sync replicas) and return the fold's
        verdict on it. ``Unavailable`` if the write is refused or the record does not come
        back within ``wait_s``."""
        if not self._started:
            raise Unavailable(f"{self._topic} is not being followed yet")
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        # Registered before the write: the follower may fold the record before the ack.
        self._waiting[envelope.id] = future
        try:
            try:
                await self._producer.publish(self._topic, envelope, key=key)
            except Exception as exc:
                raise Unavailable(f"{self._topic}: the record was not written") from exc
            try:
                return await asyncio.wait_for(asyncio.shield(future), self._wait_s)
            except TimeoutError as exc:
                raise Unavailable(
                    f"{self._topic}: the record was written but not folded within "
                    f"{self._wait_s:g} s"
                ) from exc
        finally:
            self._waiting.pop(envelope.id, None)

    async def record(self, envelope: Envelope, key: str) -> None:
        """Write a record that needs no verdict (acknowledged before this returns)."""
        await self._producer.publish(self._topic, envelope, key=key)

    async def _apply(self, envelope: Envelope) -> None:
        self._apply_one(envelope)

    def _apply_one(self, envelope: Envelope) -> None:
        verdict = self._fold(envelope)
        future = self._waiting.get(envelope.id)
        if future is not None and not future.done():
            future.set_result(verdict)
