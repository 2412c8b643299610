"""Where one durable step's time goes, span by span, on the secured stack.

Runs the services with ``KEEL_TRACING_EXPORTER=console`` (every span as JSON in each service's
log), runs sequential bench sessions (``bench: run K no-op steps``), then reads the spans back
and prints, per span name and service, how many there were and their p50 and mean duration.
Exporting spans costs CPU in every process, so the absolute numbers are a little higher than
``bench/e2e_overhead.py`` prints; what this shows is the split: a gRPC call's client span minus
its server span is the hop (TLS, HTTP/2, the interceptors on both sides), and a server span
minus the calls it makes is that service's own work and its awaited writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from cpu import broker_pid, own_cpu_seconds, tree_cpu_seconds
from e2e_overhead import SessionDriver, step_latencies
from prometheus_client.parser import text_string_to_metric_families

from keel_cli.broker import local_kafka
from keel_cli.stack import LocalStack, with_free_ports
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings


def spans_in(log: Path) -> list[dict[str, Any]]:
    """The console exporter's JSON objects among a service's log lines."""
    text = log.read_text(errors="replace")
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    while (start := text.find("\n{", index)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start + 1)
        except json.JSONDecodeError:
            index = start + 2
            continue
        if isinstance(value, dict) and "start_time" in value and "name" in value:
            found.append(value)
        index = end
    return found


def scrape(stack: LocalStack) -> tuple[dict[tuple[str, str], float], dict[str, list[float]]]:
    """From each service's metrics: records produced per topic, and the cycle collector's
    pauses (count, seconds) per generation."""
    produced: dict[tuple[str, str], float] = {}
    pauses: dict[str, list[float]] = {}
    for spec in stack.specs:
        url = f"http://127.0.0.1:{spec.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "keel_bus_messages_produced_total" and sample.value:
                    produced[(spec.instance, sample.labels["topic"])] = sample.value
                elif sample.name.startswith("keel_gc_pause_seconds_"):
                    kept = pauses.setdefault(
                        f"{spec.instance} gen {sample.labels['generation']}", [0.0, 0.0]
                    )
                    if sample.name.endswith("_count"):
                        kept[0] = sample.value
                    elif sample.name.endswith("_sum"):
                        kept[1] = sample.value
    return produced, pauses


def cpu_of(name: str, pid: int) -> float:
    """A service's CPU with its helpers (Milvus Lite); this bench's without the processes it
    started."""
    return own_cpu_seconds(pid) if name == "this bench" else tree_cpu_seconds([pid])


def duration_ms(span: dict[str, Any]) -> float:
    start = datetime.fromisoformat(span["start_time"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(span["end_time"].replace("Z", "+00:00"))
    return (end - start).total_seconds() * 1000


async def measure(args: argparse.Namespace, kafka: KafkaSettings, credentials: Path) -> None:
    await ensure_topics(kafka)
    run_dir = Path(tempfile.mkdtemp(prefix="keel-spans-"))
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
        kafka_credentials=credentials,
        extra_env={"KEEL_TRACING_EXPORTER": "console", "KEEL_TRACING_EXPORT_DELAY_MS": "200"},
    )
    latencies: list[float] = []
    try:
        await stack.start()
        async with SessionDriver(kafka) as driver:
            await driver.run(2, args.steps)  # warm-up
            await asyncio.sleep(1.0)
            marks = {name: stack.log_path(name).stat().st_size for name in stack.processes}
            pids = {name: process.pid for name, process in stack.processes.items()}
            pids["this bench"] = os.getpid()
            broker = broker_pid(credentials)
            if broker is not None:
                pids["kafka broker"] = broker
            idle_start = {name: cpu_of(name, pid) for name, pid in pids.items()}
            await asyncio.sleep(args.idle_s)
            idle = {name: cpu_of(name, pid) - idle_start[name] for name, pid in pids.items()}
            cpu_before = {name: cpu_of(name, pid) for name, pid in pids.items()}
            for _ in range(args.sessions):
                _, events = await driver.run(1, args.steps)
                latencies += [lat for evs in events.values() for lat in step_latencies(evs)]
            cpu = {name: cpu_of(name, pid) - cpu_before[name] for name, pid in pids.items()}
            measured_steps = args.sessions * (args.steps + 1)
            await asyncio.sleep(1.5)  # the exporters' last batch
            produced, pauses = await asyncio.to_thread(scrape, stack)
    finally:
        await stack.stop()
    by_name: dict[str, list[float]] = defaultdict(list)
    for name, mark in marks.items():
        log = stack.log_path(name)
        with log.open("rb") as handle:
            handle.seek(mark)
            tail = run_dir / f"{name}.tail"
            tail.write_bytes(b"\n" + handle.read())
        for span in spans_in(tail):
            by_name[f"{name}: {span['name']}"].append(duration_ms(span))
    shutil.rmtree(run_dir, ignore_errors=True)
    steps = len(latencies)
    total_steps = args.steps * (args.sessions + 2)
    print(
        f"\nrecords produced per step over the whole run ({total_steps} steps, warm-up included):"
    )
    for (service, topic), count in sorted(produced.items(), key=lambda kv: -kv[1]):
        print(f"  {service + ' -> ' + topic:<60} {count / total_steps:6.2f}")
    print(f"  {'all':<60} {sum(produced.values()) / total_steps:6.2f}")
    print("\ncycle-collector pauses while serving (warm-up included; start-up heap frozen):")
    for name, (count, seconds) in sorted(pauses.items()):
        if count:
            print(
                f"  {name:<30} {count:6.0f} pauses, {seconds * 1000:8.1f} ms in all, "
                f"{seconds / count * 1000:6.2f} ms mean"
            )
    print(f"\nper step (tool result to tool result), {steps} steps with tracing on:")
    print(
        f"  p50 {statistics.median(latencies) * 1000:.2f} ms, mean "
        f"{statistics.fmean(latencies) * 1000:.2f} ms"
    )
    print(f"\nCPU share of one core with no session running ({args.idle_s:.0f} s idle):")
    for name, seconds in sorted(idle.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {seconds / args.idle_s * 100:6.1f} %")
    print(f"  {'all':<20} {sum(idle.values()) / args.idle_s * 100:6.1f} %")
    print(f"\nCPU per step, sequential phase ({measured_steps} model calls, tracing on):")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {seconds / measured_steps * 1000:6.2f} ms")
    print(f"  {'all':<20} {sum(cpu.values()) / measured_steps * 1000:6.2f} ms")
    print(f"\n{'service: span':<72} {'count':>6} {'per step':>8} {'p50 ms':>8} {'mean ms':>8}")
    for key, values in sorted(by_name.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"{key[:72]:<72} {len(values):>6} {len(values) / max(steps, 1):>8.2f} "
            f"{statistics.median(values):>8.2f} {statistics.fmean(values):>8.2f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU measured this long")
    args = parser.parse_args()
    async with local_kafka(secure=True) as (kafka, credentials):
        assert credentials is not None
        await measure(args, kafka, credentials)


if __name__ == "__main__":
    asyncio.run(main())
