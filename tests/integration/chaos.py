"""Helpers for tests that kill and restart services: a stack of their own, event watchers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from keel_cli.broker import credentials_dir, kafka_settings, secured, start_broker, stop_broker
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
    env = broker_env(run_dir)
    bootstrap = await asyncio.to_thread(start_broker, REPO, env)
    kafka = admin_settings(env, bootstrap, connect_timeout_s=30)
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=with_free_ports(),
        extra_env={"KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(counts), **(extra_env or {})},
        kafka_credentials=broker_credentials(env),
    )
    try:
        await ensure_topics(kafka)
        await stack.start()
        yield stack, counts, kafka
    finally:
        await stack.stop()
        await asyncio.to_thread(stop_broker, REPO, env)
        shutil.rmtree(run_dir, ignore_errors=True)


def broker_env(run_dir: Path) -> dict[str, str]:
    """The launcher's settings for a broker of its own under ``run_dir``: starting it again with
    the same settings brings back the same broker (data dir, ports, cluster id, credentials).
    Secured like every local broker unless the environment says KEEL_KAFKA_SECURITY=plaintext;
    its credentials are its own, never those of the session's broker."""
    return {
        "KEEL_KAFKA_PORT": str(free_port()),
        "KEEL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KEEL_KAFKA_DATA_DIR": str(run_dir / "kafka"),
        "KEEL_KAFKA_CREDENTIALS_DIR": str(run_dir / "kafka-credentials"),
    }


def broker_credentials(env: dict[str, str]) -> Path | None:
    """The credentials directory of the broker ``env`` describes (None when plaintext)."""
    return credentials_dir(REPO, env) if secured(env) else None


def admin_settings(env: dict[str, str], bootstrap: str, **fields: object) -> KafkaSettings:
    """The admin's settings for that broker: it creates topics and reads everything."""
    return kafka_settings(bootstrap, broker_credentials(env), **fields)


def broker_pid(env: dict[str, str]) -> int | None:
    """The pid the launcher recorded for this broker (None when it is not running)."""
    try:
        return int((Path(env["KEEL_KAFKA_DATA_DIR"]) / "broker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


async def kill_broker(env: dict[str, str], timeout_s: float = 30) -> None:
    """SIGKILL the broker (no clean shutdown: what a crash or an OOM kill does) and wait until
    the process is gone, so a restart finds its ports free."""
    pid = broker_pid(env)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    await asyncio.to_thread(_wait_gone, pid, timeout_s)


def _wait_gone(pid: int, timeout_s: float) -> None:
    """The broker is not our child (the launcher detaches it), so there is nothing to wait()
    on: watch /proc until the process is gone or a zombie."""
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"broker pid {pid} still alive {timeout_s} s after SIGKILL")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def restart_broker(env: dict[str, str]) -> str:
    """Start the broker again on the same data dir and ports; its bootstrap address."""
    return await asyncio.to_thread(start_broker, REPO, env)


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
