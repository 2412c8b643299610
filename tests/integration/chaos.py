"""Helpers for tests that kill and restart services: a stack of their own, event watchers."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from keel_cli.broker import start_broker, stop_broker
from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack, free_port, with_free_ports
from keel_contracts.events import Envelope, TaskProgress
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def own_stack(
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[LocalStack, Path, KafkaSettings]]:
    """A broker and six services of their own, with the counting tool enabled (and
    ``extra_env`` for every service); yields (stack, counts dir, kafka settings).

    Tests that kill processes must not share topics with the session stack: its agent loop
    would pick up their tasks (and the shared tool ledger would answer their calls).
    """
    run_dir = Path(tempfile.mkdtemp(prefix="keel-chaos-"))
    counts = run_dir / "counts"
    counts.mkdir()
    env = {
        "KEEL_KAFKA_PORT": str(free_port()),
        "KEEL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KEEL_KAFKA_DATA_DIR": str(run_dir / "kafka"),
    }
    bootstrap = await asyncio.to_thread(start_broker, REPO, env)
    kafka = KafkaSettings(bootstrap=bootstrap, connect_timeout_s=30)
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=with_free_ports(),
        extra_env={"KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(counts), **(extra_env or {})},
    )
    try:
        await ensure_topics(kafka)
        await stack.start()
        yield stack, counts, kafka
    finally:
        await stack.stop()
        await asyncio.to_thread(stop_broker, REPO, env)
        shutil.rmtree(run_dir, ignore_errors=True)


async def restart(stack: LocalStack, name: str, timeout_s: float = 60) -> None:
    stack.start_one(stack.spec(name))
    await stack.wait_healthy(stack.spec(name), asyncio.get_running_loop().time() + timeout_s)


class Watcher:
    """Collects one session's envelopes in the background while a test acts on the stack."""

    def __init__(self, follower: SessionFollower, session_id: str) -> None:
        self.events: list[Envelope] = []
        self.result: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect(follower, session_id))

    async def _collect(self, follower: SessionFollower, session_id: str) -> None:
        async for envelope in follower.events(session_id):
            self.events.append(envelope)
            self._changed.set()
        self.result.set_result(self.events[-1])

    def progress(self, kind: str) -> list[TaskProgress]:
        return [
            p
            for e in self.events
            if e.type == TaskProgress.event_type and (p := e.parse(TaskProgress)).kind == kind
        ]

    async def until(self, kind: str, count: int = 1, timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.progress(kind)) < count:
                self._changed.clear()
                await self._changed.wait()

    async def finished(self, timeout_s: float = 90) -> Envelope:
        return await asyncio.wait_for(asyncio.shield(self.result), timeout_s)

    def stop(self) -> None:
        self._task.cancel()
