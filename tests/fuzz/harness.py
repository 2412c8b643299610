"""What the fuzz tests share: an ``InMemoryRuntime`` that records what each consumer's
handler and each follower's ``apply`` did with every envelope, the accounting that every record
was handled or dead-lettered with a reason, and the size of a run.

A run is ``KEEL_FUZZ_EXAMPLES`` hypothesis examples per test (default 10), each a batch of
100 records (or, in the gRPC tests, 10 requests of every method); ``KEEL_FUZZ_EXAMPLES=100``
is the 10,000-records-per-topic run (``make fuzz``, three to five minutes on two cores, see
docs/guarantees.md), and ``KEEL_FUZZ_SEED=1`` drops the fixed seed for a new random run.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, settings
from pydantic import ValidationError

from keel_contracts.canonical import canonical_json
from keel_contracts.errors import KeelError
from keel_contracts.events.envelope import Envelope
from keel_core.bus.consumer import Handler, PoisonMessage
from keel_core.bus.follower import Apply
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryConsumer, InMemoryRuntime
from keel_core.testing.bus import InMemoryFollower

EXAMPLES = int(os.environ.get("KEEL_FUZZ_EXAMPLES", "10"))
# 25 draws x 4 records a draw = 100 records per example.
DRAWS_PER_EXAMPLE = 25
REQUESTS_PER_EXAMPLE = 10

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("KEEL_FUZZ_SEED") is None,
    database=None,
    # No shrinking: a batch that breaks a service would be re-fed through it for minutes; the
    # failure names the records that failed, which is what a bug report needs.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# What a handler may raise for a record it cannot use: the consumer dead-letters it with the
# message as the reason (a typed ``KeelError`` is the use case refusing it). Anything else
# (TypeError, KeyError, AttributeError …, or a bare KeelError) is a bug.
CLEAN_REJECTIONS: tuple[type[BaseException], ...] = (
    PoisonMessage,
    ValidationError,
    ValueError,
    KeelError,
)


@dataclass
class Outcomes:
    """Per envelope id: how often a handler returned, and every exception it raised."""

    handled: Counter[str] = field(default_factory=Counter)
    raised: list[tuple[str, BaseException]] = field(default_factory=list)
    apply_failures: list[tuple[str, BaseException]] = field(default_factory=list)
    # Envelopes a follower has been given, and a condition to wait on that count.
    applied: int = 0
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def count_applied(self) -> None:
        async with self.progress:
            self.applied += 1
            self.progress.notify_all()

    async def wait_applied(self, count: int, timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s), self.progress:
            await self.progress.wait_for(lambda: self.applied >= count)


class ObservedFollower:
    """A follower whose ``apply`` outcomes are recorded (a follower has no DLQ: it applies a
    record, skips it, or refuses it cleanly, and the follower logs why)."""

    def __init__(self, inner: InMemoryFollower, outcomes: Outcomes) -> None:
        self._inner = inner
        self._outcomes = outcomes

    async def load(self) -> list[Envelope]:
        return await self._inner.load()

    async def start_at_end(self) -> None:
        await self._inner.start_at_end()

    def follow(self, apply: Apply) -> None:
        async def observed(envelope: Envelope) -> None:
            try:
                await apply(envelope)
            except Exception as exc:
                self._outcomes.apply_failures.append((envelope.id, exc))
                raise
            finally:
                await self._outcomes.count_applied()
            self._outcomes.handled[identity(envelope)] += 1

        self._inner.follow(observed)

    async def stop(self) -> None:
        await self._inner.stop()


class FuzzRuntime(InMemoryRuntime):
    """``InMemoryRuntime`` whose consumers and followers report what became of each record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes = Outcomes()

    def consume(self, topics: list[str], group_id: str, handler: Handler) -> InMemoryConsumer:
        async def observed(envelope: Envelope) -> None:
            try:
                await handler(envelope)
            except Exception as exc:
                self.outcomes.raised.append((envelope.id, exc))
                raise
            self.outcomes.handled[identity(envelope)] += 1

        return super().consume(topics, group_id, observed)

    def follower(  # type: ignore[override]
        self, topic: str, role: str, *, batched: bool = False
    ) -> ObservedFollower:
        return ObservedFollower(super().follower(topic, role, batched=batched), self.outcomes)

    def pumps_alive(self) -> bool:
        """Every consumer's and follower's background task is still running."""
        pumps = [t for t in asyncio.all_tasks() if t.get_name().startswith("pump-")]
        return bool(pumps) and not any(t.done() for t in pumps)


async def feed(
    runtime: FuzzRuntime, topic: str, values: Sequence[bytes | None], *, follower: bool = False
) -> None:
    """Append ``values`` to ``topic``, wait until the service is idle, and check that each one
    was handled or is on ``<topic>.dlq`` with a reason (a follower: applied or skipped)."""
    dlq = f"{topic}.dlq"
    dlq_before = len(runtime.bus.records(dlq))
    failures_before = len(runtime.outcomes.raised)
    apply_failures_before = len(runtime.outcomes.apply_failures)
    applied_before = runtime.outcomes.applied
    for i, value in enumerate(values):
        runtime.bus.append(topic, value, f"k{i % 7}", [])
    if follower:  # a follower is given every record that decodes as an envelope
        decodable = sum(_envelope(v) is not None for v in values)
        await runtime.outcomes.wait_applied(applied_before + decodable)
    await runtime.settle(timeout_s=15)

    dead = runtime.bus.records(dlq)[dlq_before:]
    for record in dead:
        reasons = [v for k, v in record.headers if k == "keel-dlq-reason"]
        assert reasons, f"dead-lettered without a reason: {record!r:.300}"
        assert reasons[0].strip(), f"dead-lettered with an empty reason: {record!r:.300}"
    unexpected = [
        (eid, exc)
        for eid, exc in runtime.outcomes.raised[failures_before:]
        if not isinstance(exc, CLEAN_REJECTIONS) or type(exc) is KeelError
    ]
    assert not unexpected, f"handler crashed: {[(e, repr(x)[:300]) for e, x in unexpected]}"
    # A follower logs what it cannot apply and goes on (keel_core.bus.follower): a clean
    # rejection is its way of refusing a record; anything else is a crash.
    crashed = [
        (eid, exc)
        for eid, exc in runtime.outcomes.apply_failures[apply_failures_before:]
        if not isinstance(exc, CLEAN_REJECTIONS) or type(exc) is KeelError
    ]
    assert not crashed, f"apply crashed: {[(e, repr(x)[:300]) for e, x in crashed]}"
    if follower:
        return
    dead_values = Counter(r.value for r in dead)
    lost = []
    for value in values:
        if dead_values[value] > 0:
            dead_values[value] -= 1
            continue
        envelope = _envelope(value)
        if envelope is not None and runtime.outcomes.handled[identity(envelope)] > 0:
            runtime.outcomes.handled[identity(envelope)] -= 1
            continue
        lost.append(value)
    assert not lost, f"neither handled nor dead-lettered: {[repr(v)[:200] for v in lost]}"


async def still_serving(target: str) -> bool:
    """Whether the service's gRPC server still says SERVING after the fuzz."""
    async with insecure_channel(target) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return bool(health.status == health_pb2.HealthCheckResponse.SERVING)


def identity(envelope: Envelope) -> str:
    """What a record is, whoever parsed it: a record without ``id`` or ``time`` gets fresh
    defaults at every parse, so those two fields cannot tell records apart."""
    return canonical_json(envelope.model_dump(mode="json", exclude={"id", "time"}))


def _envelope(value: bytes | None) -> Envelope | None:
    if value is None:
        return None
    try:
        return Envelope.from_bytes(value)
    except ValueError:
        return None
