"""Keel beside LangGraph in one run: the durable agent step, secured, next to its peer.

Issue 17's table asks for Keel and its peer measured on the same machine in the same run, so
the machine's load is the same for both. This script runs, one after the other (never at once:
on 2 cores they would measure each other):
- the peer: LangGraph 1.2 + ``SqliteSaver``, sync durability, in-process
  (bench/peer_langgraph.py, in its own cached virtualenv);
- Keel: the six services as processes on a secured broker (Kafka TLS + SCRAM + ACLs, gRPC
  mutual TLS + tokens, signed audit and ledger: what ``make run`` starts), driven by
  bench/e2e_overhead.py's session runner: per-step latency with one session at a time, steps/s
  with ``--concurrency`` sessions at once.
Both run the same workload: a scripted model asks for a no-op tool K times, then answers.

Keel is measured warm, as a deployment runs: before the timed phases, ``--warm-up-s`` seconds
(45 by default) of ``--concurrency`` sessions at a time. A freshly started broker spends its
first minute compiling (JFR on the bench's broker: 14.4 s of C2 compilation in its first 36 s),
and measured cold that is 20-34 ms of broker CPU per step with one session at a time — on two
cores, a core taken from the services the step waits for. ``--warm-up-s 0`` measures it cold,
as the issue's "before" column was.

CPU per step counts every process that does the work, from /proc: for Keel, the six services
(with any children) and the broker, printed apart and summed; for the peer, its one process.
The client that submits and follows the sessions is not counted on either side. CPU per step
also says where the machine is the wall: ``cores / CPU per step`` is the most steps/s this
machine could give whatever the latency, so a target above it needs less CPU, not less waiting.

Then the other rows of issue 17 that have benches of their own are repeated from their last
results (bench/results/*.json, written by the scripts ``make bench`` ran before this one).
Writes bench/results/side_by_side.json. Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keel_cli.broker import local_kafka, repo_root
from keel_cli.stack import LocalStack, harness_credentials, with_free_ports
from keel_contracts.events import TaskCompleted
from keel_core.bus.admin import ensure_topics
from keel_core.grpc import use_client_credentials
from keel_core.settings import KafkaSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_langgraph  # noqa: E402
from cpu import broker_pid, tree_cpu_seconds  # noqa: E402
from e2e_overhead import SessionDriver, percentile, step_latencies  # noqa: E402

# The stack this script starts is secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)

# Issue 17's targets for the durable step, with security on, on 2 cores.
TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0
TARGET_STEPS_PER_S = 1000.0
# What the issue measured before this work (its table, same kind of machine), printed beside
# today's numbers so one run shows before and after.
ISSUE_BEFORE = {"step_p50_ms": 13.8, "step_p99_ms": 34.3, "steps_per_second": 147.0}


class CpuMeter:
    """CPU seconds of the stack's services and of the broker since the last ``lap``."""

    def __init__(self, stack: LocalStack, broker: int | None) -> None:
        self.stack, self.broker = stack, broker
        self.last = self.read()

    def read(self) -> tuple[float, float | None]:
        services = tree_cpu_seconds([p.pid for p in self.stack.processes.values()])
        broker = tree_cpu_seconds([self.broker]) if self.broker is not None else None
        return services, broker

    def lap(self) -> tuple[float, float | None]:
        now = self.read()
        services = now[0] - self.last[0]
        broker = now[1] - self.last[1] if now[1] is not None and self.last[1] is not None else None
        self.last = now
        return services, broker


def iterations(events: dict[str, list[Any]]) -> int:
    """Steps as Keel counts them: model calls, from each session's ``TaskCompleted``."""
    return sum(evs[-1].parse(TaskCompleted).iterations for evs in events.values())


def per_step(cpu: tuple[float, float | None], steps: int) -> dict[str, float | None]:
    services, broker = cpu
    if not steps:  # the phase did not finish: no per-step figure to give
        return dict.fromkeys(
            ("services_cpu_ms_per_step", "broker_cpu_ms_per_step", "cpu_ms_per_step")
        )
    return {
        "services_cpu_ms_per_step": services / steps * 1000,
        "broker_cpu_ms_per_step": broker / steps * 1000 if broker is not None else None,
        "cpu_ms_per_step": (services + (broker or 0.0)) / steps * 1000,
    }


async def keel(args: argparse.Namespace) -> dict[str, Any]:
    """bench/e2e_overhead.py's measurement on the secured stack, with CPU read around it."""
    async with local_kafka(secure=True) as (kafka, credentials):
        return await keel_on(args, kafka, credentials)


async def keel_on(
    args: argparse.Namespace, kafka: KafkaSettings, credentials: Path | None
) -> dict[str, Any]:
    await ensure_topics(kafka)
    run_dir = Path(tempfile.mkdtemp(prefix="keel-bench-sbs-"))
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
        kafka_credentials=credentials,
    )
    kept = False
    try:
        await stack.start()
        async with SessionDriver(kafka) as driver:
            await driver.run(3, args.steps, args.timeout)  # warm-up: connections, caches
            warm_until, warm_sessions = time.monotonic() + args.warm_up_s, 0
            while time.monotonic() < warm_until:  # and the broker's JIT (module docstring)
                await driver.run(args.concurrency, args.steps, args.timeout)
                warm_sessions += args.concurrency
            if warm_sessions:
                print(
                    f"  warmed up: {warm_sessions} sessions in {args.warm_up_s:.0f} s", flush=True
                )
            meter = CpuMeter(stack, broker_pid(credentials))
            latencies: list[float] = []
            sequential_steps = 0
            for _ in range(args.sessions):
                _, events = await driver.run(1, args.steps, args.timeout)
                latencies += [lat for evs in events.values() for lat in step_latencies(evs)]
                sequential_steps += iterations(events)
            sequential_cpu = meter.lap()
            print(f"  one session at a time: {len(latencies)} steps measured", flush=True)
            concurrent_steps: int | None = None
            try:
                wall, events = await driver.run(args.concurrency, args.steps, args.timeout)
                concurrent_steps = iterations(events)
            except TimeoutError:
                # A result in itself (sessions parked on an overloaded dependency): say so and
                # still print the rest of the table.
                wall = args.timeout
                print(
                    f"  {args.concurrency} sessions did not all finish in {wall:.0f} s",
                    flush=True,
                )
            concurrent_cpu = meter.lap()
    except BaseException:
        kept = True  # the services' logs say why; keep them
        print(f"  Keel run failed; services' logs kept in {run_dir / 'logs'}", flush=True)
        raise
    finally:
        await stack.stop()
        if not kept:
            shutil.rmtree(run_dir, ignore_errors=True)
    sequential = per_step(sequential_cpu, sequential_steps)
    return {
        "step_p50_ms": statistics.median(latencies) * 1000,
        "step_p99_ms": percentile(latencies, 0.99) * 1000,
        "steps_measured": len(latencies),
        "warm_up_s": args.warm_up_s,
        "warm_up_sessions": warm_sessions,
        "sequential_cpu_ms_per_step": sequential["cpu_ms_per_step"],
        "sequential_services_cpu_ms_per_step": sequential["services_cpu_ms_per_step"],
        "sequential_broker_cpu_ms_per_step": sequential["broker_cpu_ms_per_step"],
        "concurrent_sessions": args.concurrency,
        "concurrent_steps": concurrent_steps,
        "concurrent_wall_s": wall,
        "steps_per_second": concurrent_steps / wall if concurrent_steps else None,
        **per_step(concurrent_cpu, concurrent_steps or 0),
    }


EMBEDDERS = (" minilm", " minilm-static")


def other_rows(results: Path) -> list[str]:
    """Issue 17's other rows, from the last results of the benches that measure them."""
    lines = []
    try:
        llm = json.loads((results / "llm_gateway.json").read_text())
        # One section per trust mode (older results: one section, plaintext).
        modes = llm.get("modes") or {"plaintext": llm}
        peer = next(
            (m["fixed_rate"]["litellm"] for m in modes.values() if "litellm" in m["fixed_rate"]),
            None,
        )
        for mode, section in modes.items():
            keel_row, hit = section["fixed_rate"]["keel"], section["cache_hit_grpc"]
            lines.append(
                f"  LLM gateway added latency ({mode}, mock upstream): +{keel_row['added_p50_ms']}"
                f" ms p50, +{keel_row['added_p99_ms']} ms p99; target +0.5 / +2 ms;"
                " issue before +1.3 / +6.2"
            )
            back = section.get("cache_hit_grpc_back_to_back")
            lines.append(
                f"  LLM cache hit over gRPC ({mode}): p50 {hit['p50_ms']} ms one at a time"
                + (f", {back['p50_ms']} ms back to back" if back else "")
                + "; target 0.3 ms; issue before 3.6"
            )
        if peer:
            lines.append(
                f"  LiteLLM proxy, same run: +{peer['added_p50_ms']} / +{peer['added_p99_ms']} ms"
            )
    except (OSError, KeyError, TypeError, ValueError):
        lines.append("  LLM gateway rows: no results yet (`.venv/bin/python bench/llm_gateway.py`)")
    try:
        runs = json.loads((results / "memory_burst.json").read_text())
        # The newest run of each embedder (keys are "<label> <embedder>"; older runs have
        # no embedder in the key and were MiniLM's).
        newest: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, burst in runs.items():
            embedder = key.rsplit(" ", 1)[-1] if key.endswith(EMBEDDERS) else "minilm"
            newest[embedder] = (key, burst)
        for embedder, (label, burst) in newest.items():
            lines.append(
                f"  memory Retrieve, {burst.get('sessions', 50)} at once, {embedder}: p50 "
                f"{burst['burst_p50_ms']:.1f} ms, p99 {burst['burst_p99_ms']:.1f} ms, mean "
                f"{burst['burst_mean_ms']:.1f} ms (bench/memory_burst.py, run {label}); "
                "target p99 50 ms; issue before: mean 477 ms"
            )
        if not newest:
            raise ValueError("no runs")
    except (OSError, IndexError, KeyError, TypeError, ValueError):
        lines.append(
            "  memory Retrieve rows: no results yet (`.venv/bin/python bench/memory_burst.py`)"
        )
    return lines


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(keel_row: dict[str, Any], peer: dict[str, Any], load: dict[str, Any]) -> None:
    cores = os.cpu_count() or 1
    versions = " ".join(f"{k} {v}" for k, v in peer["versions"].items())
    print(f"\nKeel beside LangGraph, one run ({cores} cores; {versions})")
    print(f"load average before {load['before']}, between {load['between']}, after {load['after']}")
    print(
        f"Keel measured after {keel_row['warm_up_s']:.0f} s of warm-up"
        f" ({keel_row['warm_up_sessions']} sessions; --warm-up-s 0 measures a cold broker)"
    )
    head = (
        f"  {'':<30} {'Keel, secured':>14} {'LangGraph+SQLite':>17} {'target':>8}"
        f" {'issue before':>13}"
    )
    print(head)
    rows = (
        ("per step p50, one session (ms)", "step_p50_ms", 2, f"<={TARGET_P50_MS:g}"),
        ("per step p99, one session (ms)", "step_p99_ms", 2, f"<={TARGET_P99_MS:g}"),
        (
            f"steps/s, {keel_row['concurrent_sessions']} sessions",
            "steps_per_second",
            0,
            f">={TARGET_STEPS_PER_S:,.0f}",
        ),
        ("CPU per step (ms), concurrent", "cpu_ms_per_step", 2, ""),
        ("CPU per step (ms), one session", "sequential_cpu_ms_per_step", 2, ""),
    )
    for label, key, places, target in rows:
        before = ISSUE_BEFORE.get(key)
        print(
            f"  {label:<30} {fmt(keel_row[key], places):>14} {fmt(peer[key], places):>17}"
            f" {target:>8} {'' if before is None else fmt(before, places):>13}"
        )
    for phase, prefix in (("concurrent", ""), ("one session", "sequential_")):
        print(
            f"    Keel CPU per step, {phase}: services"
            f" {fmt(keel_row[prefix + 'services_cpu_ms_per_step'])} ms"
            f" + broker {fmt(keel_row[prefix + 'broker_cpu_ms_per_step'])} ms"
        )
    ceiling = {
        name: cores * 1000 / row["cpu_ms_per_step"] if row["cpu_ms_per_step"] else None
        for name, row in (("keel", keel_row), ("peer", peer))
    }
    print(
        f"  {'CPU ceiling, steps/s':<30} {fmt(ceiling['keel'], 0):>14}"
        f" {fmt(ceiling['peer'], 0):>17} {TARGET_STEPS_PER_S:>8,.0f}"
    )
    need = cores * 1000 / TARGET_STEPS_PER_S
    print(
        f"    ({cores} cores / CPU per step: the most steps/s this machine could give. The"
        f" {TARGET_STEPS_PER_S:,.0f} steps/s\n     target needs <= {need:.1f} ms CPU per step"
        " over every process; above that the cores are the wall, not waiting.)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="sequential sessions")
    parser.add_argument("--steps", type=int, default=10, help="tool steps per session")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--warm-up-s", type=float, default=45.0, help="sessions run before measuring Keel; 0: cold"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds one batch of sessions may take"
    )
    args = parser.parse_args()

    def load() -> str:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())

    loads = {"before": load()}
    started = time.monotonic()
    print("• LangGraph 1.2 + SqliteSaver (sync durability, in-process)", flush=True)
    peer = await asyncio.to_thread(peer_langgraph.run, args.steps, args.sessions, args.concurrency)
    print(
        f"  p50 {peer['step_p50_ms']:.2f} ms, p99 {peer['step_p99_ms']:.2f} ms,"
        f" {peer['steps_per_second']:.0f} steps/s, {peer['cpu_ms_per_step']:.2f} ms CPU/step",
        flush=True,
    )
    loads["between"] = load()
    print("• Keel, secured stack (six services, broker with TLS + SCRAM + ACLs)", flush=True)
    keel_row = await keel(args)
    loads["after"] = load()
    report(keel_row, peer, loads)
    results = repo_root() / "bench" / "results"
    print("\nother rows of issue 17 (from their benches' last results):")
    for line in other_rows(results):
        print(line)
    print(f"\n({time.monotonic() - started:.0f} s)")
    results.mkdir(exist_ok=True)
    out = {"keel_secured": keel_row, "langgraph": peer, "load_average": loads, "args": vars(args)}
    (results / "side_by_side.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
