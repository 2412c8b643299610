"""What the acknowledged writes of a step cost, and what re-serialising a checkpoint costs.

Issue 17 says each step awaits an acknowledged ledger write (~3 ms) and re-serialises the whole
session state at every checkpoint. This measures both pieces on their own, on a broker secured
as ``make run`` starts it (SASL_SSL + SCRAM, acks=all, idempotent producer), with the service
producer (``keel_core.bus.producer.EventProducer``) every service uses:

* ``sequential``: one awaited write after another (a lone session's ledger write);
* ``gathered N``: N awaited writes started together (N sessions' ledger writes in one tool
  gateway): they share produce requests, since the producer keeps one request in flight per
  broker and batches whatever arrives meanwhile;
* ``behind a pipelined write``: an awaited write issued right after a pipelined one (an audit
  record, a checkpoint): it waits for the request in flight first;
* ``checkpoint serialisation``: the agent loop's ``TableCheckpoints.save`` path for a
  no-op-tool session after 10, 50 and 200 iterations (state dump, envelope, bytes), in-process.

Numbers go to stdout and ``bench/results/step_writes.json``; ``--no-broker`` measures only the
serialisation. Run it twice on a shared machine and report both, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable
from typing import Any

from keel_agent_loop.adapters.checkpoints import TableCheckpoints
from keel_agent_loop.domain.models import AgentState
from keel_cli.broker import local_kafka, repo_root
from keel_contracts.chat import ChatMessage, ToolCall
from keel_contracts.events import Envelope, ToolResultRecorded
from keel_core.bus.admin import ensure_topics
from keel_core.bus.producer import MAX_BATCH_BYTES, EventProducer
from keel_core.settings import KafkaSettings
from keel_core.testing import InMemoryBus, InMemoryTable

TOPIC = "keel.tool-results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(samples_s) * 1000,
        "p99_ms": percentile(samples_s, 0.99) * 1000,
        "n": len(samples_s),
    }


def ledger_record(i: int) -> Envelope:
    """A ledger record of the size the no-op tool's results have."""
    record = ToolResultRecorded(
        idempotency_key=f"bench-{i}:{i}:0",
        tool="noop",
        fingerprint="f" * 64,
        status="ok",
        output="ok",
        tenant="default",
        session_id=f"bench-{i}",
        mac="m" * 64,
    )
    return Envelope.wrap(record, source="tool-gateway", session_id=f"bench-{i}")


async def timed(write: Awaitable[Any]) -> float:
    """Seconds from when the write starts (a coroutine starts when awaited) to its end."""
    started = time.perf_counter()
    await write
    return time.perf_counter() - started


def checkpoint_sized(i: int) -> Envelope:
    """A pipelined write the size of a 50-iteration checkpoint (~12 KB), on one key."""
    filler = ToolResultRecorded(
        idempotency_key=f"burst-{i}", tool="noop", fingerprint="", status="ok", output="x" * 12000
    )
    return Envelope.wrap(filler, source="agent-loop", session_id="burst")


async def broker_writes(
    kafka: KafkaSettings, writes: int, batch_bytes: int
) -> dict[str, dict[str, float]]:
    await ensure_topics(kafka)
    producer = EventProducer(kafka, "bench-step-writes", max_batch_bytes=batch_bytes)
    await producer.start()
    out: dict[str, dict[str, float]] = {}
    try:

        async def send(i: int) -> int:
            envelope = ledger_record(i)
            return await producer.send_raw(TOPIC, envelope.to_bytes(), envelope.session_id, [])

        for i in range(50):  # warm-up: connections, metadata, the broker's JIT
            await send(i)
        out["sequential"] = summary([await timed(send(i)) for i in range(writes)])
        for width in (10, 50):
            per_write: list[float] = []
            rounds_started = time.perf_counter()
            rounds = max(1, writes // width)
            for r in range(rounds):
                per_write += await asyncio.gather(
                    *(timed(send(r * width + i)) for i in range(width))
                )
            wall = time.perf_counter() - rounds_started
            out[f"gathered {width}"] = {
                **summary(per_write),
                "writes_per_s": rounds * width / wall,
            }
        behind: list[float] = []
        for i in range(writes):
            await producer.enqueue(TOPIC, ledger_record(i))  # a pipelined write in flight
            behind.append(await timed(send(i)))
        out["behind a pipelined write"] = summary(behind)
        burst_wall: list[float] = []
        behind_burst: list[float] = []
        for r in range(max(1, writes // 50)):
            started = time.perf_counter()
            for i in range(50):  # 50 sessions' checkpoints landing on one partition
                await producer.enqueue(TOPIC, checkpoint_sized(r * 50 + i), key="burst")
            envelope = ledger_record(r)
            behind_burst.append(
                await timed(producer.send_raw(TOPIC, envelope.to_bytes(), "burst", []))
            )
            await producer.flush()
            burst_wall.append(time.perf_counter() - started)
        out["awaited write behind 50 x 12 KB pipelined"] = summary(behind_burst)
        out["50 x 12 KB pipelined, until all acked"] = summary(burst_wall)
        await producer.flush()
    finally:
        await producer.stop()
    return out


def session_state(iterations: int) -> AgentState:
    """A no-op-tool session after ``iterations`` steps: a call and its result per step."""
    messages = [ChatMessage(role="system", content="You are a helpful agent. " * 20)]
    messages.append(ChatMessage(role="user", content=f"bench: run {iterations} no-op steps"))
    for i in range(iterations):
        call = ToolCall(id=f"call-{i}", name="noop", arguments_json=f'{{"step": {i}}}')
        messages.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        messages.append(ChatMessage(role="tool", content="ok", tool_call_id=call.id, name="noop"))
    return AgentState(
        session_id="bench-session",
        goal=f"bench: run {iterations} no-op steps",
        messages=messages,
        iteration=iterations,
        max_iterations=iterations + 2,
        status="planning",
        trace="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        tools_used=["noop"],
    )


async def serialisation(repeat: int) -> dict[str, dict[str, float]]:
    """The CPU of one pipelined checkpoint (``save(durable=False)``) over an in-memory table:
    everything the agent loop does per iteration except the socket."""
    out: dict[str, dict[str, float]] = {}
    for iterations in (10, 50, 200):
        state = session_state(iterations)
        table = InMemoryTable(InMemoryBus(), "keel.checkpoints", source="agent-loop")
        store = TableCheckpoints(table)
        samples = []
        for _ in range(repeat):
            samples.append(await timed(store.save(state, durable=False)))
        raw = state.model_dump_json().encode()
        out[f"checkpoint save, {iterations} iterations"] = {
            **summary(samples),
            "state_bytes": len(raw),
        }
    return out


def show(results: dict[str, dict[str, float]]) -> None:
    for name, row in results.items():
        extra = "  ".join(
            f"{k} {v:.0f}" for k, v in row.items() if k not in ("p50_ms", "p99_ms", "n")
        )
        print(
            f"  {name:<62} p50 {row['p50_ms']:7.3f} ms  p99 {row['p99_ms']:7.3f} ms"
            f"  (n={row['n']:.0f})  {extra}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--no-broker", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    results |= await serialisation(args.repeat)
    if not args.no_broker:
        async with local_kafka(secure=True) as (kafka, _):
            # aiokafka's default batch (the producer before ADR 0016), then the producer's own.
            for batch_bytes in (16 * 1024, MAX_BATCH_BYTES):
                rows = await broker_writes(kafka, args.writes, batch_bytes)
                results |= {
                    f"{name} [batch {batch_bytes // 1024} KiB]": row for name, row in rows.items()
                }
    print(f"\nacknowledged writes and checkpoint serialisation (load {os.getloadavg()[0]:.2f}):")
    show(results)
    out = repo_root() / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "step_writes.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
