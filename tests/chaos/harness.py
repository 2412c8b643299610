"""Run sessions through SIGKILLs of every service and of the broker, then check the promises.

The run, as an operator lives it: a broker and the six services as real processes on free
ports, the counting tool enabled. The sessions are submitted in batches, one batch before each
kill, and each kill waits until that batch is mid-way, so every kill lands on sessions in flight.
The kills follow a seeded random order with seeded random pauses; each killed service is
started again with the same ports and settings, and the broker on the same data dir and ports.
A service that dies on its own (e.g. while the broker is down) is started again too, as a
supervisor would, and counted. When every session has a result (or the time is up) the checks
of ``checks`` read the verdicts from the topics and the counter files.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from keel_cli.broker import stop_broker
from keel_cli.stack import SERVICES, LocalStack, with_free_ports
from keel_contracts.events import Envelope, TaskSubmitted
from keel_contracts.topics import TASKS
from keel_core.bus.admin import ensure_topics
from keel_core.bus.producer import EventProducer
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent
from tests.chaos.checks import Disruption, Report, Session, check, read_results
from tests.chaos.observe import Observer
from tests.integration.chaos import (
    REPO,
    admin_settings,
    broker_credentials,
    broker_env,
    kill_broker,
    restart_broker,
)

log = logging.getLogger(__name__)

BROKER = "broker"


@dataclass(frozen=True)
class Plan:
    """The sizes of a run. ``seed`` fixes the kill order, the pauses and the step counts."""

    sessions: int = 40
    kills_per_service: int = 1
    broker_kills: int = 1
    steps: int = 8  # K: tool calls per session
    seed: int = 0
    max_pause_s: float = 2.0  # random pause before each restart and before each kill
    progress_timeout_s: float = 60.0  # how long a kill waits for sessions to progress again
    timeout_s: float = 900.0  # the whole run, checks included

    def schedule(self) -> list[str]:
        """The kills in order: every service ``kills_per_service`` times and the broker
        ``broker_kills`` times, shuffled by the seed."""
        order = [s.name for s in SERVICES for _ in range(self.kills_per_service)]
        order += [BROKER] * self.broker_kills
        random.Random(self.seed).shuffle(order)
        return order


class Supervisor:
    """Starts again a service that exited without being killed by the run, and counts it."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.exits: Counter[str] = Counter()
        self.down: set[str] = set()  # killed on purpose: the run starts these itself
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for name, process in list(self.stack.processes.items()):
                if name in self.down or process.poll() is None:
                    continue
                self.exits[name] += 1
                log.warning(
                    "%s exited by itself (code %s); starting it again", name, process.returncode
                )
                self.stack.start_one(self.stack.spec(name))


async def start_again(stack: LocalStack, supervisor: Supervisor, name: str) -> None:
    """Start ``name`` with its ports and settings and wait until it is healthy; a start that
    fails (the broker still coming back) is tried again."""
    for attempt in range(5):
        stack.start_one(stack.spec(name))
        try:
            await stack.wait_healthy(stack.spec(name), time.monotonic() + 90)
            return
        except (RuntimeError, TimeoutError) as exc:
            supervisor.exits[name] += 1
            log.warning("%s did not come back (attempt %d): %s", name, attempt + 1, exc)
            stack.kill(name)
    raise RuntimeError(f"{name} did not come back after 5 starts:\n{stack.log_tail(name)}")


class ChaosRun:
    def __init__(
        self, plan: Plan, stack: LocalStack, kafka: KafkaSettings, env: dict[str, str], counts: Path
    ) -> None:
        self.plan = plan
        self.stack = stack
        self.kafka = kafka
        self.env = env
        self.counts = counts
        self.rng = random.Random(plan.seed)
        self.observer = Observer(kafka)
        self.supervisor = Supervisor(stack)
        self.sessions: list[Session] = []
        self.disruptions: list[Disruption] = []

    def batches(self, count: int) -> list[list[Session]]:
        tag = uuid.uuid4().hex[:6]
        sessions = [
            Session(uuid.uuid4().hex, f"c{i}-{tag}", self.plan.steps)
            for i in range(self.plan.sessions)
        ]
        return [sessions[i::count] for i in range(count)]

    async def submit(self, producer: EventProducer, batch: list[Session]) -> None:
        for session in batch:
            task = TaskSubmitted(goal=session.goal, max_iterations=session.steps + 2)
            envelope = Envelope.wrap(
                task, source="keel-chaos", session_id=session.session_id, trace=new_traceparent()
            )
            await producer.publish(TASKS, envelope)
            self.sessions.append(session)

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.plan.max_pause_s))

    async def disrupt(self, target: str) -> None:
        """Kill ``target``, pause, start it again, and time how long until sessions progress."""
        killed_at = time.time()
        self.supervisor.down.add(target)
        if target == BROKER:
            await kill_broker(self.env)
            self.supervisor.down.update(s.name for s in SERVICES)  # may die with it: see below
            await self.pause()
            await restart_broker(self.env)
            self.supervisor.down.clear()
        else:
            self.stack.kill(target)
            await self.pause()
            await start_again(self.stack, self.supervisor, target)
            self.supervisor.down.discard(target)
        healthy_at = time.time()
        # Calls answered just before the kill may be stamped just after it: 1 s of grace.
        moment = killed_at + 1.0
        ids = {s.session_id for s in self.sessions}
        await self.observer.until(  # or until nothing is left in flight to progress
            lambda: (
                self.observer.progressed_after(moment) is not None
                or ids <= self.observer.results.keys()
            ),
            self.plan.progress_timeout_s,
        )
        seen = self.observer.progressed_after(moment)
        idle = (
            seen is None and {s.session_id for s in self.sessions} <= self.observer.results.keys()
        )
        self.disruptions.append(
            Disruption(
                target, healthy_at - killed_at, None if seen is None else seen - killed_at, idle
            )
        )
        print(
            f"  killed {target:<13} back after {healthy_at - killed_at:5.1f} s, progress after "
            + ("never" if seen is None else f"{seen - killed_at:5.1f} s")
            + (" (no session in flight)" if idle else ""),
            flush=True,
        )

    def under_way(self, ids: set[str]) -> bool:
        """A session of the batch has made a step: the next kill lands mid-session."""
        return any(self.observer.steps[i] >= 1 for i in ids)

    async def run(self) -> None:
        schedule = self.plan.schedule()
        print(f"chaos: seed {self.plan.seed}, kill order: {' '.join(schedule)}", flush=True)
        batches = self.batches(len(schedule) or 1)
        await self.observer.start()
        self.supervisor.start()
        producer = EventProducer(self.kafka, "chaos")
        await producer.start()
        try:
            for target, batch in zip(schedule or [""], batches, strict=True):
                await self.submit(producer, batch)
                await self.observer.until(
                    partial(self.under_way, {s.session_id for s in batch}),
                    self.plan.progress_timeout_s,
                )
                await self.pause()
                if target:
                    await self.disrupt(target)
        finally:
            await producer.stop()
        await self.wait_for_results()

    async def wait_for_results(self) -> None:
        """Until every session has a result; the live view is topped up from the topic now and
        then, since it misses what was written while the broker was down."""
        ids = {s.session_id for s in self.sessions}
        while not ids <= self.observer.results.keys():
            self.observer.note_results(await read_results(self.kafka))
            await self.observer.until(lambda: ids <= self.observer.results.keys(), 10)

    async def stop(self) -> None:
        self.supervisor.stop()
        await self.observer.stop()


@asynccontextmanager
async def chaos_stack(
    keep: bool = False,
) -> AsyncIterator[tuple[LocalStack, KafkaSettings, dict[str, str], Path]]:
    """A broker of its own and the six services with the counting tool; yields the stack, the
    Kafka settings, the broker's launcher settings (to kill and restart it) and the counters'
    directory. Removed afterwards unless ``keep``."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-chaos-"))
    counts = run_dir / "counts"
    counts.mkdir()
    env = broker_env(run_dir)
    bootstrap = await restart_broker(env)
    kafka = admin_settings(env, bootstrap, connect_timeout_s=60)
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=with_free_ports(),
        extra_env={"KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(counts)},
        kafka_credentials=broker_credentials(env),
    )
    try:
        await ensure_topics(kafka)
        await stack.start()
        yield stack, kafka, env, counts
    finally:
        await stack.stop()
        await asyncio.to_thread(stop_broker, REPO, env)
        if keep:
            print(f"run directory kept: {run_dir} (logs/, counts/, kafka/)")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


async def run_chaos(plan: Plan, keep: bool = False) -> Report:
    """One chaos run: the report of every check (the checks run even when time ran out)."""
    started = time.monotonic()
    report = Report(seed=plan.seed, sessions=plan.sessions)
    async with chaos_stack(keep) as (stack, kafka, env, counts):
        chaos = ChaosRun(plan, stack, kafka, env, counts)
        try:
            async with asyncio.timeout(
                max(plan.timeout_s - 120, plan.timeout_s / 2)
            ):  # checks after
                await chaos.run()
        except TimeoutError:
            report.timed_out = True
        finally:
            await chaos.stop()
        report.sessions = len(chaos.sessions) or plan.sessions
        report.disruptions = chaos.disruptions
        report.unexpected_exits = dict(chaos.supervisor.exits)
        await check(kafka, chaos.sessions, counts, report, stack.trust_dir)
    report.elapsed_s = time.monotonic() - started
    return report
