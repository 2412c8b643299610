"""What shared LLM budgets (ADR 0015) add to a Complete: ms per reservation and settlement on
a real broker, and µs per record of the fold every replica runs.

Measures, with budgets on (a limit set, the ledger on ``keel.llm.budget``):

- ``fold``: ``BudgetFold.reserve`` + ``settle`` of one request (3 scopes), in-process: what
  each replica spends per record it follows;
- ``local``: the in-memory ledger (``budget_shared=false``, or before ADR 0015): reserve +
  settle, for comparison;
- ``reserve``: append the reservation (acks=all) and wait until this replica's follower has
  folded it: the latency added before the model is asked;
- ``settle``: the acknowledged settlement written before the answer is returned;
- ``2 replicas × 8 concurrent``: reservations of one tenant from two ledgers at once (one
  partition orders them all).

Starts a plaintext broker of its own (or uses ``KEEL_KAFKA_BOOTSTRAP``).
Run: ``python bench/budgets.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from keel_cli.broker import local_broker
from keel_contracts.topics import LLM_BUDGET
from keel_core.bus.admin import ensure_topics
from keel_core.bus.follower import TopicFollower
from keel_core.bus.producer import EventProducer
from keel_core.settings import KafkaSettings
from keel_llm_gateway.adapters.budget_topic import TopicBudgets
from keel_llm_gateway.domain.budget_fold import BudgetFold
from keel_llm_gateway.domain.budgets import BudgetLedger, BudgetLimits, Limit, ScopeKind, Spend
from keel_llm_gateway.domain.models import Scope

LIMITS = BudgetLimits(tenant=Limit(tokens=10**15))
SCOPE = Scope(session_id="s1", agent_id="a1", tenant="bench")
KEYS = ((ScopeKind.SESSION, "s1"), (ScopeKind.AGENT, "a1"), (ScopeKind.TENANT, "bench"))


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)]
    return f"{statistics.median(ordered):8.3f} / {p99:8.3f}"


def in_process(rounds: int) -> None:
    fold = BudgetFold(LIMITS, hold_ttl_s=900)
    ledger = BudgetLedger(LIMITS)
    fold_us: list[float] = []
    local_us: list[float] = []
    for batch in range(rounds):
        started = time.perf_counter()
        for n in range(1000):
            rid = f"{batch}-{n}"
            fold.reserve(rid, "bench", KEYS, Spend(100, 0.01), at=float(batch))
            fold.settle(rid, "bench", Spend(90, 0.009), at=float(batch))
        fold_us.append((time.perf_counter() - started) / 1000 * 1e6)
        started = time.perf_counter()
        for _ in range(1000):
            ledger.settle(ledger.reserve(SCOPE, Spend(100, 0.01)), Spend(90, 0.009))
        local_us.append((time.perf_counter() - started) / 1000 * 1e6)
    print(f"  {'fold reserve + settle (per replica)':38s} {quantiles(fold_us)} µs")
    print(f"  {'local ledger reserve + settle':38s} {quantiles(local_us)} µs")


Replica = tuple[TopicBudgets, EventProducer, TopicFollower]


async def replica(kafka: KafkaSettings, name: str) -> Replica:
    producer = EventProducer(kafka, f"bench-budgets-{name}")
    await producer.start()
    follower = TopicFollower(kafka, LLM_BUDGET, f"bench-budgets-{name}")
    budgets = TopicBudgets(
        BudgetFold(LIMITS, hold_ttl_s=900), follower, producer, "bench", time.time
    )
    await budgets.start()
    return budgets, producer, follower


async def on_broker(kafka: KafkaSettings, requests: int) -> None:
    await ensure_topics(kafka)
    replicas = [await replica(kafka, "a"), await replica(kafka, "b")]
    one, two = replicas[0][0], replicas[1][0]
    try:
        for _ in range(20):  # warm up connections and the JIT
            await one.settle(await one.reserve(SCOPE, Spend(1)), Spend(1))
        reserve_ms: list[float] = []
        settle_ms: list[float] = []
        for _ in range(requests):
            started = time.perf_counter()
            held = await one.reserve(SCOPE, Spend(100, 0.01))
            reserved = time.perf_counter()
            await one.settle(held, Spend(90, 0.009))
            reserve_ms.append((reserved - started) * 1e3)
            settle_ms.append((time.perf_counter() - reserved) * 1e3)
        print(f"  {'reserve (append + fold own record)':38s} {quantiles(reserve_ms)} ms")
        print(f"  {'settle (acknowledged)':38s} {quantiles(settle_ms)} ms")
        total = [r + s for r, s in zip(reserve_ms, settle_ms, strict=True)]
        print(f"  {'added to one Complete':38s} {quantiles(total)} ms")

        concurrent_ms: list[float] = []

        async def timed(budgets: TopicBudgets) -> None:
            started = time.perf_counter()
            held = await budgets.reserve(SCOPE, Spend(100, 0.01))
            concurrent_ms.append((time.perf_counter() - started) * 1e3)
            await budgets.settle(held, Spend(90, 0.009))

        for _ in range(max(requests // 16, 1)):
            await asyncio.gather(*(timed(b) for b in (one, two) for _ in range(8)))
        print(f"  {'reserve, 2 replicas x 8 concurrent':38s} {quantiles(concurrent_ms)} ms")
    finally:
        for budgets, producer, follower in replicas:
            await budgets.stop()
            await follower.stop()
            await producer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=100, help="in-process batches of 1,000")
    args = parser.parse_args()
    print("LLM budgets shared across replicas: p50 / p99")
    in_process(args.rounds)
    async with local_broker() as bootstrap:
        await on_broker(KafkaSettings(bootstrap=bootstrap), args.requests)


if __name__ == "__main__":
    asyncio.run(main())
