"""Tool-gateway overhead per Execute over gRPC, next to the policy decision it contains.

Starts the policy and tool-gateway services as real processes (``keel_cli.stack.LocalStack``,
only those two) on a real broker (``KEEL_KAFKA_BOOTSTRAP``, or one started on free ports and
stopped afterwards), then calls them one at a time from this process:

- ``Execute noop`` with no idempotency key (policy call + run + audit, no ledger),
- ``Execute noop`` with a new key per call (adds the durable ledger write, acks=all),
- ``Execute noop`` with a key already recorded (answered from the ledger: nothing runs),
- ``Execute calculator`` with no key (a sync tool),
- ``PolicyService/Evaluate`` alone, for comparison.

Calls go through ``keel_clients`` (``ToolClient``, ``PolicyClient``), as the agent loop and
the tool gateway make them: one unary call each, no retries.

Prints p50/p99/mean client round-trip latency per kind and writes
bench/results/tool_gateway_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from keel_cli.broker import local_broker, repo_root
from keel_cli.stack import LocalStack, harness_credentials, with_free_ports
from keel_clients import CallOptions, PolicyClient, ToolClient, open_channel
from keel_contracts.chat import RequestContext, ToolCall
from keel_core.bus.admin import ensure_topics
from keel_core.grpc import use_client_credentials
from keel_core.settings import KafkaSettings

# The stacks this script starts are secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)

SERVICES = ("policy", "tool-gateway")
CONTEXT = RequestContext(session_id="bench", agent_id="bench", tenant="", agent_profile="default")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": statistics.fmean(ms),
        "calls": len(ms),
    }


async def timed(call: Callable[[int], Awaitable[Any]], calls: int, warmup: int) -> list[float]:
    for i in range(warmup):
        await call(-1 - i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


async def measure(stack: LocalStack, calls: int, warmup: int) -> dict[str, dict[str, float]]:
    run_id = os.urandom(4).hex()
    async with (
        open_channel(stack.target("tool-gateway")) as tool_channel,
        open_channel(stack.target("policy")) as policy_channel,
    ):
        tools = ToolClient(tool_channel, CallOptions(timeout_s=10))
        policy = PolicyClient(policy_channel, CallOptions(timeout_s=10))

        async def execute(tool: str, arguments: str, key: str) -> None:
            call = ToolCall(id="c", name=tool, arguments_json=arguments)
            outcome = await tools.execute(CONTEXT, call, key)
            if outcome.status != "ok":
                raise RuntimeError(f"{tool} did not run: {outcome.error}")

        async def no_key(_: int) -> None:
            await execute("noop", "{}", "")

        async def new_key(i: int) -> None:
            await execute("noop", "{}", f"bench-{run_id}:{i}")

        async def replayed_key(_: int) -> None:
            await execute("noop", "{}", f"bench-{run_id}:replayed")

        async def calculator(_: int) -> None:
            await execute("calculator", '{"expression": "(17 * 23) + 4"}', "")

        async def evaluate(_: int) -> None:
            await policy.evaluate(CONTEXT, "noop", {})

        kinds: dict[str, Callable[[int], Awaitable[None]]] = {
            "policy Evaluate": evaluate,
            "Execute noop, no key": no_key,
            "Execute noop, new key": new_key,
            "Execute noop, replayed key": replayed_key,
            "Execute calculator, no key": calculator,
        }
        return {name: summary(await timed(call, calls, warmup)) for name, call in kinds.items()}


async def bench(args: argparse.Namespace, kafka: KafkaSettings) -> dict[str, dict[str, float]]:
    await ensure_topics(kafka)
    run_dir = Path(tempfile.mkdtemp(prefix="keel-bench-tools-"))
    stack = LocalStack(run_dir=run_dir, kafka_bootstrap=kafka.bootstrap, specs=with_free_ports())
    try:
        deadline = time.monotonic() + 90
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        for name in SERVICES:  # only these two; the others' ports are reserved, not used
            stack.start_one(stack.spec(name))
        for name in SERVICES:
            await stack.wait_healthy(stack.spec(name), deadline)
        return await measure(stack, args.calls, args.warmup)
    finally:
        await stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per kind")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per kind")
    args = parser.parse_args()
    root = repo_root()
    async with local_broker() as bootstrap:
        result = await bench(args, KafkaSettings(bootstrap=bootstrap))
    print("\nTool gateway overhead per call over gRPC (client round trip, one call at a time)")
    for name, row in result.items():
        print(
            f"  {name:<30} p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
            f"mean {row['mean_ms']:6.2f} ms  ({row['calls']:.0f} calls)"
        )
    out = root / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "tool_gateway_overhead.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
