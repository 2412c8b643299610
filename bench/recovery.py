"""Recovery after kill -9 of the agent-loop process.

Starts a broker (or uses ``KEEL_KAFKA_BOOTSTRAP``) and the stack with the counting tool,
runs ``--sessions`` sessions of ``count 8 times slowly`` (300 ms per tool call), kills the
agent loop with SIGKILL once every session has made progress, starts a new agent-loop process,
and prints: the time from the kill until sessions make progress again, the time until all
finish, and whether any tool call ran twice (each session's counter must end at exactly 8).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from keel_cli.broker import local_broker
from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack, harness_credentials, with_free_ports
from keel_cli.tasks import publish_task
from keel_contracts.events import TaskCompleted, TaskProgress, TaskSubmitted
from keel_contracts.topics import RESULTS
from keel_core.bus.admin import ensure_topics
from keel_core.grpc import use_client_credentials
from keel_core.settings import KafkaSettings

# The stacks this script starts are secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)

STEPS = 8


async def run(kafka: KafkaSettings, sessions: int) -> None:
    await ensure_topics(kafka)
    run_dir = Path(tempfile.mkdtemp(prefix="keel-recovery-"))
    counts = run_dir / "counts"
    counts.mkdir()
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
        extra_env={"KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(counts)},
    )
    try:
        await stack.start()
        async with SessionFollower(kafka, start="end") as follower:
            names = {f"r{i}-{run_dir.name[-6:]}": "" for i in range(sessions)}
            for name in names:
                names[name] = await publish_task(
                    kafka,
                    TaskSubmitted(
                        goal=f"count {STEPS} times slowly: {name}", max_iterations=STEPS + 2
                    ),
                )
            ids = set(names.values())
            progressed: set[str] = set()
            killed_at = resumed_at = 0.0
            finished: dict[str, TaskCompleted | None] = {}
            async for topic, envelope in follower.stream():
                if envelope.session_id not in ids:
                    continue
                if topic == RESULTS:
                    ok = envelope.type == TaskCompleted.event_type
                    finished[envelope.session_id] = envelope.parse(TaskCompleted) if ok else None
                    if len(finished) == len(ids):
                        break
                    continue
                kind = envelope.parse(TaskProgress).kind
                if not killed_at and kind == "tool_result":
                    progressed.add(envelope.session_id)
                    if progressed == ids:
                        stack.kill("agent-loop")
                        killed_at = time.time()
                        stack.start_one(stack.spec("agent-loop"))
                elif killed_at and not resumed_at and envelope.time.timestamp() > killed_at:
                    # The first step a new process made (events are stamped when created).
                    resumed_at = envelope.time.timestamp()
            done_at = time.time()
    finally:
        await stack.stop()
    repeated = {
        name: (counts / f"{name}.count").read_text().strip()
        for name in names
        if (counts / f"{name}.count").read_text().strip() != str(STEPS)
    }
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\nkill -9 of agent-loop with {sessions} sessions in flight")
    print(f"  progress again after {resumed_at - killed_at:.2f} s (target ≤10 s)")
    print(
        f"  all sessions finished {done_at - killed_at:.2f} s after the kill; "
        f"completed: {sum(1 for r in finished.values() if r)}/{sessions}"
    )
    print("  tool calls repeated: " + ("none" if not repeated else str(repeated)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    async with local_broker() as bootstrap:
        await run(KafkaSettings(bootstrap=bootstrap), args.sessions)


if __name__ == "__main__":
    asyncio.run(main())
