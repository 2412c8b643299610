"""The scaling curve: steps/s with 1 and 2 replicas of every service on a 3-broker cluster.

Starts the launcher's cluster (three secured KRaft nodes, replication factor 3, min ISR 2; or
``KEEL_KAFKA_BOOTSTRAP``) and, for each replica count, a stack with that many processes of each
service, callers naming every replica of their dependencies. Each stack runs ``--concurrency``
sessions of ``bench: run K no-op steps`` (scripted model, no-op tool: Keel's own work only) and
prints:

- steps/s, wall clock, on this machine;
- CPU seconds per step: the services' processes (user + system, from /proc) and the brokers',
  so the per-core figure says what more machines would give when this one's cores are full;
- with 2 replicas, the time for a killed agent-loop replica's sessions to move: SIGKILL while
  sessions of ``count K times slowly`` run on both replicas, until the first progress event of
  a session the killed replica was running (the consumer group's session timeout, 6 s, is most
  of it).

Results go to bench/results/scaling.json; docs/scaling.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from keel_cli.broker import local_kafka, node_pid, repo_root, topic_env
from keel_cli.follow import SessionFollower
from keel_cli.stack import SERVICES, LocalStack, harness_credentials, with_free_ports, with_replicas
from keel_cli.tasks import publish_task
from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.errors import NotFound
from keel_contracts.events import TaskCompleted, TaskProgress, TaskSubmitted
from keel_contracts.topics import RESULTS
from keel_core.bus.admin import ensure_topics
from keel_core.grpc import use_client_credentials
from keel_core.settings import KafkaSettings

# The stacks this script starts are secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)

TICKS = os.sysconf("SC_CLK_TCK")
NODES = 3


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (those gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def broker_pids(data_dir: Path | None) -> list[int]:
    if data_dir is None:
        return []
    env = {"KEEL_KAFKA_DATA_DIR": str(data_dir)}
    return [pid for node in range(1, NODES + 1) if (pid := node_pid(env, node)) is not None]


async def run_sessions(
    kafka: KafkaSettings, count: int, goal: str, steps: int
) -> tuple[float, int]:
    """Submit ``count`` sessions at once; wall time until all finished and their steps."""
    async with SessionFollower(kafka, start="end") as follower:
        started = time.perf_counter()
        task = TaskSubmitted(goal=goal, max_iterations=steps + 2)
        waiting = set(await asyncio.gather(*(publish_task(kafka, task) for _ in range(count))))
        iterations = 0
        async for topic, envelope in follower.stream():
            if topic != RESULTS or envelope.session_id not in waiting:
                continue
            if envelope.type != TaskCompleted.event_type:
                raise RuntimeError(f"session {envelope.session_id} did not complete")
            iterations += envelope.parse(TaskCompleted).iterations
            waiting.discard(envelope.session_id)
            if not waiting:
                return time.perf_counter() - started, iterations
    raise RuntimeError("the follower stopped")


def make_stack(
    kafka: KafkaSettings, credentials: Path | None, replicas: int, run_dir: Path
) -> LocalStack:
    counts = run_dir / "counts"
    counts.mkdir(parents=True, exist_ok=True)
    return LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_replicas(with_free_ports(), {s.name: replicas for s in SERVICES}),
        extra_env={"KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(counts), **topic_env(NODES)},
        kafka_credentials=credentials,
    )


async def throughput(
    args: argparse.Namespace, kafka: KafkaSettings, stack: LocalStack, brokers: list[int]
) -> dict[str, float]:
    goal = f"bench: run {args.steps} no-op steps"
    await run_sessions(kafka, 4, goal, args.steps)  # warm-up: connections, caches
    services = [p.pid for p in stack.processes.values()]
    service_cpu, broker_cpu = cpu_seconds(services), cpu_seconds(brokers)
    wall, steps = await run_sessions(kafka, args.concurrency, goal, args.steps)
    service_cpu = cpu_seconds(services) - service_cpu
    broker_cpu = cpu_seconds(brokers) - broker_cpu
    return {
        "steps": steps,
        "wall_s": wall,
        "steps_per_second": steps / wall,
        "service_cpu_ms_per_step": 1000 * service_cpu / steps,
        "broker_cpu_ms_per_step": 1000 * broker_cpu / steps,
        "steps_per_cpu_second": steps / (service_cpu + broker_cpu),
    }


async def owner_of(stack: LocalStack, session_id: str) -> str | None:
    """The agent-loop replica running ``session_id`` (the one whose Get knows it)."""
    for spec in stack.replicas("agent-loop"):
        async with open_channel(stack.target(spec.instance)) as channel:
            try:
                await AgentClient(channel, CallOptions(timeout_s=5)).get(session_id)
            except NotFound:
                continue
            return spec.instance
    return None


async def failover(kafka: KafkaSettings, stack: LocalStack, sessions: int) -> float:
    """Seconds from SIGKILL of ``agent-loop-2`` to the first progress of one of its sessions
    on the surviving replica."""
    async with SessionFollower(kafka, start="end") as follower:
        tag = uuid.uuid4().hex[:6]
        tasks = [
            TaskSubmitted(goal=f"count 30 times slowly: f{i}-{tag}", max_iterations=32)
            for i in range(sessions)
        ]
        ids = set(await asyncio.gather(*(publish_task(kafka, task) for task in tasks)))
        progressed: set[str] = set()
        moved: set[str] = set()
        killed_at = 0.0
        async for topic, envelope in follower.stream():
            if envelope.session_id not in ids or topic == RESULTS:
                continue
            if envelope.type != TaskProgress.event_type:
                continue
            if not killed_at:
                progressed.add(envelope.session_id)
                if progressed == ids:
                    owners = {i: await owner_of(stack, i) for i in ids}
                    moved = {i for i, owner in owners.items() if owner == "agent-loop-2"}
                    if not moved:
                        raise RuntimeError("agent-loop-2 ran none of the sessions")
                    stack.kill("agent-loop-2")
                    killed_at = time.time()
            elif envelope.session_id in moved and envelope.time.timestamp() > killed_at:
                return envelope.time.timestamp() - killed_at
    raise RuntimeError("the follower stopped")


async def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    async with local_kafka(nodes=NODES) as (kafka, credentials):
        await ensure_topics(kafka)
        data_dir = credentials.parent if credentials is not None else None
        brokers = broker_pids(data_dir)
        for replicas in (1, 2):
            run_dir = Path(tempfile.mkdtemp(prefix=f"keel-scaling-{replicas}-"))
            stack = make_stack(kafka, credentials, replicas, run_dir)
            try:
                await stack.start(timeout_s=240)
                results[f"replicas_{replicas}"] = await throughput(args, kafka, stack, brokers)
                if replicas == 2:
                    moved_s = await failover(kafka, stack, args.failover_sessions)
                    results["replicas_2"]["failover_s"] = moved_s
            finally:
                await stack.stop()
                shutil.rmtree(run_dir, ignore_errors=True)
    return results


def render(results: dict[str, dict[str, float]], cores: int) -> str:
    lines = [
        f"\nKeel on a 3-broker cluster (RF 3, min ISR 2), {cores} cores,"
        " scripted model, no-op tool",
        "  replicas  steps/s  services CPU ms/step  brokers CPU ms/step  steps per CPU-second",
    ]
    for replicas in (1, 2):
        r = results[f"replicas_{replicas}"]
        lines.append(
            f"  {replicas:>8}  {r['steps_per_second']:7.1f}  {r['service_cpu_ms_per_step']:20.1f}"
            f"  {r['broker_cpu_ms_per_step']:19.1f}  {r['steps_per_cpu_second']:20.1f}"
        )
    lines.append(
        "  a killed agent-loop replica's sessions move to the other in "
        f"{results['replicas_2']['failover_s']:.1f} s (kill -> first progress of a moved session)"
    )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="tool steps per session")
    parser.add_argument("--concurrency", type=int, default=40, help="sessions at once")
    parser.add_argument("--failover-sessions", type=int, default=6)
    args = parser.parse_args()
    results = await measure(args)
    print(render(results, os.cpu_count() or 1))
    out = repo_root() / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
