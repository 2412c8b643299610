"""Per-step platform overhead through the whole distributed path.

A session here is ``bench: run K no-op steps``: the scripted model asks for the ``noop`` tool K
times, then answers. Each step therefore crosses Kafka in (task), the agent loop, the LLM
gateway (gRPC), the tool gateway (gRPC), policy (gRPC), the audit topic (three records), and
progress events out — with no model or tool time, so what is measured is Keel's own overhead.

Prints: step latency p50/p99 with one session at a time, and steps per second with
``--concurrency`` sessions at once. Run with ``make bench``; ``KEEL_KAFKA_BOOTSTRAP`` uses an
existing broker, otherwise one is started on free ports and stopped afterwards (plaintext, as
the earlier numbers were measured). ``--compare-security`` runs the same measurement with
everything the trust layer adds switched off (plaintext broker, plaintext gRPC, no tokens,
nothing signed: ``KEEL_TRUST_INSECURE_DEV``) and with all of it on (TLS + SCRAM + ACLs on Kafka,
mutual TLS and tokens on gRPC, signed approvals, audit and ledger: what ``make run`` starts),
and prints them side by side.

``--profile DIR`` attaches py-spy (``requirements/dev.txt``) to every service process for the
concurrent phase and writes one flame graph per service into DIR (``--profile-format``:
``flamegraph`` SVG, ``speedscope`` JSON or ``raw`` collapsed stacks). py-spy samples with
``--nonblocking`` so the services are never paused, but the samplers share the machine's cores:
numbers printed by a profiled run are not the ones to report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from keel_cli.broker import local_kafka, repo_root
from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack, harness_credentials, with_free_ports
from keel_contracts.events import Envelope, TaskCompleted, TaskProgress, TaskSubmitted
from keel_contracts.topics import RESULTS, TASKS
from keel_core.bus.admin import ensure_topics
from keel_core.bus.producer import EventProducer
from keel_core.grpc import use_client_credentials
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent

# The stacks this script starts are secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class _Session:
    events: list[Envelope] = field(default_factory=list)
    result: asyncio.Future[Envelope] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SessionDriver:
    """One producer and one follower for a whole bench run. Opening them per session (as
    ``keel submit`` does) cost the broker a TLS handshake and a SCRAM login each: at 50
    sessions at once a burst of broker CPU that was measured as Keel's."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._producer = EventProducer(kafka, "bench")
        self._follower = SessionFollower(kafka, start="end")
        self._sessions: dict[str, _Session] = {}
        self._collector: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SessionDriver:
        await self._producer.start()
        await self._follower.__aenter__()
        self._collector = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        await self._follower.__aexit__()
        await self._producer.stop()

    async def run(
        self, count: int, steps: int, timeout_s: float = 600
    ) -> tuple[float, dict[str, list[Envelope]]]:
        """Submit ``count`` sessions at once; wall time until the last result, and each
        session's events (its result last)."""
        task = TaskSubmitted(goal=f"bench: run {steps} no-op steps", max_iterations=steps + 2)
        ids = [uuid.uuid4().hex for _ in range(count)]
        sessions = {sid: self._sessions.setdefault(sid, _Session()) for sid in ids}
        started = time.perf_counter()
        await asyncio.gather(*(self._submit(task, sid) for sid in ids))
        results = await asyncio.wait_for(
            asyncio.gather(*(s.result for s in sessions.values())), timeout_s
        )
        wall = time.perf_counter() - started
        await asyncio.sleep(0.3)  # progress fetched after its result (the topics are apart)
        for sid, result in zip(ids, results, strict=True):
            del self._sessions[sid]
            if result.type != TaskCompleted.event_type:
                raise RuntimeError(f"session {sid} did not complete: {result.data}")
        return wall, {sid: [*s.events, s.result.result()] for sid, s in sessions.items()}

    async def _submit(self, task: TaskSubmitted, session_id: str) -> None:
        envelope = Envelope.wrap(
            task, source="keel-bench", session_id=session_id, trace=new_traceparent()
        )
        await self._producer.publish(TASKS, envelope)

    async def _collect(self) -> None:
        async for topic, envelope in self._follower.stream():
            session = self._sessions.get(envelope.session_id)
            if session is None:
                continue
            if topic != RESULTS:
                session.events.append(envelope)
            elif not session.result.done():
                session.result.set_result(envelope)


def grpc_breakdown(stack: LocalStack) -> dict[str, tuple[float, float]]:
    """Mean server-side handling time per gRPC method, scraped from each service's metrics."""
    out: dict[str, tuple[float, float]] = {}
    for spec in stack.specs:
        url = f"http://127.0.0.1:{spec.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "keel_grpc_server_handling_seconds":
                continue
            for sample in family.samples:
                method = sample.labels.get("method", "").rsplit("/", 1)[-1]
                if sample.name.endswith("_sum"):
                    sums[method] = sample.value
                elif sample.name.endswith("_count"):
                    counts[method] = sample.value
        for method, count in counts.items():
            if count and method not in {"Check"}:
                out[f"{spec.name} {method}"] = (count, sums[method] / count * 1000)
    return out


class Profiler:
    """One ``py-spy record`` per service process while a phase of the bench runs."""

    def __init__(self, out_dir: Path, fmt: str, rate: int) -> None:
        self._out_dir = out_dir
        self._fmt = fmt
        self._rate = rate
        self._samplers: list[subprocess.Popen[bytes]] = []

    def start(self, stack: LocalStack, label: str) -> None:
        self._out_dir.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).with_name("py-spy")
        suffix = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}[self._fmt]
        for name, process in stack.processes.items():
            target = self._out_dir / f"{label}-{name}.{suffix}"
            command = [str(py_spy), "record", "--pid", str(process.pid), "--nonblocking"]
            command += ["--rate", str(self._rate), "--format", self._fmt, "-o", str(target)]
            self._samplers.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )

    def stop(self) -> None:
        """SIGINT makes py-spy write what it sampled and exit."""
        for sampler in self._samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in self._samplers:
            _, err = sampler.communicate(timeout=60)
            if sampler.returncode not in (0, -signal.SIGINT):
                print(f"py-spy exited {sampler.returncode}: {err.decode()[-300:]}")
        self._samplers.clear()


def step_latencies(events: list[Envelope]) -> list[float]:
    """Seconds between successive tool results: one full think-act-observe step each."""
    times = [
        e.time.timestamp()
        for e in events
        if e.type == TaskProgress.event_type and e.parse(TaskProgress).kind == "tool_result"
    ]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def bench(
    args: argparse.Namespace,
    kafka: KafkaSettings,
    credentials: Path | None = None,
    *,
    insecure: bool = False,
) -> dict[str, float]:
    await ensure_topics(kafka)
    run_dir = Path(tempfile.mkdtemp(prefix="keel-bench-"))
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
        kafka_credentials=credentials,
        insecure=insecure,
    )
    try:
        await stack.start()
        async with SessionDriver(kafka) as driver:
            await driver.run(3, args.steps)  # warm-up: connections, JIT-free paths, caches
            latencies: list[float] = []
            for _ in range(args.sessions):
                _, events = await driver.run(1, args.steps)
                latencies += [lat for evs in events.values() for lat in step_latencies(evs)]
            profiler = (
                Profiler(Path(args.profile), args.profile_format, args.profile_rate)
                if args.profile
                else None
            )
            if profiler is not None:
                profiler.start(stack, "insecure" if insecure else "secured")
            try:
                wall, events = await driver.run(args.concurrency, args.steps)
            finally:
                if profiler is not None:
                    profiler.stop()
            total_steps = sum(
                e.parse(TaskCompleted).iterations for evs in events.values() for e in evs[-1:]
            )
        breakdown = await asyncio.to_thread(grpc_breakdown, stack)
    finally:
        await stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    print("\nmean gRPC handling time per call, whole run (server side, incl. audit writes):")
    for method, (count, mean_ms) in sorted(breakdown.items()):
        print(f"  {method:<48} {mean_ms:6.2f} ms  ({count:.0f} calls)")
    return {
        "step_p50_ms": statistics.median(latencies) * 1000,
        "step_p99_ms": percentile(latencies, 0.99) * 1000,
        "steps_measured": len(latencies),
        "concurrent_sessions": args.concurrency,
        "concurrent_steps": total_steps,
        "concurrent_wall_s": wall,
        "steps_per_second": total_steps / wall,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="sequential sessions")
    parser.add_argument("--steps", type=int, default=10, help="tool steps per session")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--compare-security",
        action="store_true",
        help="measure on a plaintext and on a secured broker, print both side by side",
    )
    parser.add_argument(
        "--secured",
        action="store_true",
        help="one measurement on the secured stack only (what --compare-security calls secured)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default="",
        help="py-spy every service during the concurrent phase; one flame graph each in DIR",
    )
    parser.add_argument(
        "--profile-format", choices=("flamegraph", "speedscope", "raw"), default="flamegraph"
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    args = parser.parse_args()
    root = repo_root()
    if args.compare_security:
        await compare_security(args)
        return
    async with local_kafka(secure=args.secured) as (kafka, credentials):
        # Without --secured: a plaintext broker, the rest as `make run` starts it (as before).
        result = await bench(args, kafka, credentials if args.secured else None)
    print("\nKeel end-to-end overhead (scripted model, no-op tool, every hop real)")
    print(
        f"  per step, one session at a time: p50 {result['step_p50_ms']:.2f} ms, "
        f"p99 {result['step_p99_ms']:.2f} ms ({result['steps_measured']} steps)"
    )
    print(
        f"  {result['concurrent_sessions']} concurrent sessions: "
        f"{result['steps_per_second']:.0f} steps/s "
        f"({result['concurrent_steps']} steps in {result['concurrent_wall_s']:.2f} s)"
    )
    out = root / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "e2e_overhead.json").write_text(json.dumps(result, indent=2))


async def compare_security(args: argparse.Namespace) -> None:
    """The same run with the trust layer off and on, one after the other."""
    results: dict[str, dict[str, float]] = {}
    for name, secure in (("plaintext", False), ("secured", True)):
        async with local_kafka(secure=secure) as (kafka, credentials):
            results[name] = await bench(args, kafka, credentials, insecure=not secure)
    plain, secured = results["plaintext"], results["secured"]
    print(
        "\nplaintext (no TLS, tokens or signatures) vs secured (Kafka TLS + SCRAM-SHA-512 + ACLs,"
        "\ngRPC mutual TLS + tokens, signed approvals, audit and ledger), per step:"
    )
    print(f"  {'':<22} {'plaintext':>10} {'secured':>10} {'added':>10}")
    for key, label in (
        ("step_p50_ms", "p50 (ms)"),
        ("step_p99_ms", "p99 (ms)"),
        ("steps_per_second", "concurrent steps/s"),
    ):
        added = secured[key] - plain[key]
        print(f"  {label:<22} {plain[key]:>10.2f} {secured[key]:>10.2f} {added:>+10.2f}")
    out = repo_root() / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "e2e_overhead_security.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
