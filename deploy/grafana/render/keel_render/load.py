"""Traffic for the snapshot: what a small team's agents would do in a few minutes, so every
panel has something true to show. Tasks go in on ``keel.tasks`` like any producer's; a reviewer
bot answers approvals through ``ApprovalService``; an operator looks up sessions that do not
exist (NOT_FOUND on gRPC); a broken producer sends garbage (dead letters); the status API the
agents fetch goes down for a while (retries, an open breaker); the agent loop is killed -9 and
restarted mid-run (recovery replays tool calls from the idempotency ledger)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keel_cli.stack import LocalStack
from keel_clients import AgentClient, ApprovalClient, CallOptions, open_channel
from keel_contracts.errors import KeelError
from keel_contracts.events import Envelope, TaskSubmitted
from keel_contracts.topics import TASKS
from keel_core.bus.producer import EventProducer
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent

# The scenario the demo model does not have: the agent fetches a status page (http_fetch).
FETCH_SCENARIO = {
    "name": "fetch-status",
    "match": r"(?i)^\s*check\s+the\s+status\s+page\s+(?P<url>\S+)\s*$",
    "steps": [
        # method is spelt out: the policy's allow rule matches on it (see the report).
        {"tool_calls": [{"name": "http_fetch", "arguments": {"url": "{url}", "method": "GET"}}]},
        {"content": "The status page says: {last_tool_result}"},
    ],
}


class _StatusHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b'{"status": "all systems operational"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


class StatusServer:
    """A local "status API" the agents fetch; ``down()``/``up()`` stage an outage."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status"

    def up(self) -> None:
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _StatusHandler)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class LoadReport:
    submitted: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)

    def note(self, started: float, text: str) -> None:
        self.events.append(f"t+{time.monotonic() - started:5.1f}s {text}")


# (weight, kind, goal factory, task fields): the steady mix, about two tasks a second.
def _calc() -> str:
    a, b, c = random.randint(2, 60), random.randint(2, 60), random.randint(1, 99)
    return f"What is ({a} * {b}) + {c}?"


def _mix(status_url: str) -> list[tuple[float, str, Callable[[], str], dict[str, object]]]:
    return [
        (50, "calculator", _calc, {}),
        (8, "clock", lambda: "What time is it?", {}),
        (5, "hello", lambda: "Say hello", {}),
        (6, "tool error", lambda: f"What is {random.randint(1, 9)} / 0?", {}),
        (4, "denied", lambda: "Compute 2 ** 99999", {}),
        (12, "fetch", lambda: f"Check the status page {status_url}", {}),
        (5, "approval", _email, {}),
        (3, "iteration limit", lambda: f"count 4 times slowly: n{_tag()}", {"max_iterations": 2}),
        (
            2,
            "budget",
            lambda: "bench: run 30 no-op steps",
            {"max_iterations": 40, "token_budget": 3000},
        ),
    ]


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def _email() -> str:
    who = random.choice(["bob", "carol", "dave", "erin"])
    return f"Email {who}@example.com: the nightly report {_tag()} is ready"


class LoadDriver:
    def __init__(
        self, kafka: KafkaSettings, stack: LocalStack, status: StatusServer, seed: int = 7
    ) -> None:
        self._kafka = kafka
        self._stack = stack
        self._status = status
        self._producer = EventProducer(kafka, "keel-dashboard-load")
        self.report = LoadReport()
        random.seed(seed)

    async def run(self, duration_s: float, rate_per_s: float = 2.0, crash: bool = True) -> None:
        await self._producer.start()
        started = time.monotonic()
        stop = asyncio.Event()
        side = [
            asyncio.create_task(self._reviewer(stop)),
            asyncio.create_task(self._operator(stop)),
            asyncio.create_task(self._script(started, duration_s, crash)),
        ]
        try:
            await self._steady(started, duration_s, rate_per_s)
        finally:
            stop.set()
            await asyncio.gather(*side, return_exceptions=True)
            await self._producer.stop()

    async def submit(self, goal: str, **fields: object) -> str:
        session_id = uuid.uuid4().hex
        task = TaskSubmitted.model_validate({"goal": goal, **fields})
        envelope = Envelope.wrap(
            task, source="keel-dashboard-load", session_id=session_id, trace=new_traceparent()
        )
        await self._producer.publish(TASKS, envelope)
        return session_id

    async def _steady(self, started: float, duration_s: float, rate_per_s: float) -> None:
        mix = _mix(self._status.url)
        weights = [w for w, *_ in mix]
        while time.monotonic() - started < duration_s:
            # Traffic swells and ebbs a little, as real traffic does.
            phase = (time.monotonic() - started) / duration_s
            rate = rate_per_s * (0.7 + 0.6 * abs(((phase * 3) % 2) - 1))
            _, kind, goal, fields = random.choices(mix, weights)[0]
            await self.submit(goal(), **fields)
            self.report.submitted[kind] += 1
            await asyncio.sleep(random.expovariate(rate))

    async def _script(self, started: float, duration_s: float, crash: bool) -> None:
        """One-off events at fixed points of the run."""
        steps: list[tuple[float, str, Callable[[], Awaitable[None]]]] = [
            (0.15, "garbage on keel.tasks (dead-lettered)", self._garbage),
            (0.22, "a batch job submits 80 tasks at once", self._burst),
            (0.30, "status API goes down", self._outage_start),
            (0.40, "a long task, cancelled after 2 s", self._cancelled),
            (0.55, "status API is back", self._outage_end),
            (0.65, "a long task, cancelled after 2 s", self._cancelled),
            (0.80, "garbage on keel.tasks (dead-lettered)", self._garbage),
        ]
        if crash:
            steps.append((0.45, "agent-loop killed -9 and restarted", self._crash))
        for at, what, action in sorted(steps, key=lambda s: s[0]):
            await asyncio.sleep(max(0.0, started + at * duration_s - time.monotonic()))
            self.report.note(started, what)
            await action()

    async def _garbage(self) -> None:
        await self._producer.send_raw(TASKS, b"{not json", key=uuid.uuid4().hex, headers=[])

    async def _burst(self) -> None:
        await asyncio.gather(*(self.submit(_calc()) for _ in range(80)))
        self.report.submitted["calculator"] += 80

    async def _outage_start(self) -> None:
        self._status.down()

    async def _outage_end(self) -> None:
        self._status.up()

    async def _cancelled(self) -> None:
        session_id = await self.submit(f"count 20 times slowly: c{_tag()}", max_iterations=30)
        self.report.submitted["cancelled"] += 1
        await asyncio.sleep(2.0)
        async with open_channel(self._stack.target("agent-loop")) as channel:
            await AgentClient(channel, CallOptions(timeout_s=5)).cancel(session_id, "operator")

    async def _crash(self) -> None:
        # Long counting sessions in flight when the process dies: the restarted loop resumes
        # them from their checkpoints and replays their last calls from the ledger.
        for _ in range(3):
            await self.submit(f"count 6 times slowly: k{_tag()}", max_iterations=10)
        await asyncio.sleep(3.0)
        self._stack.kill("agent-loop")
        spec = self._stack.spec("agent-loop")
        self._stack.start_one(spec)
        await self._stack.wait_healthy(spec, time.monotonic() + 90)

    async def _reviewer(self, stop: asyncio.Event) -> None:
        """Answers each request after 2-12 s: approves most, rejects about one in four."""
        due: dict[str, float] = {}
        async with open_channel(self._stack.target("approval")) as channel:
            approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
            while not stop.is_set():
                try:
                    listed = await approvals.list()
                except KeelError:  # the service may be busy; ask again
                    await asyncio.sleep(1.0)
                    continue
                now = time.monotonic()
                for approval in listed:
                    when = due.setdefault(approval.id, now + random.uniform(2, 12))
                    if when <= now:
                        await self._decide(approvals, approval.id)
                await asyncio.sleep(0.5)

    async def _decide(self, approvals: ApprovalClient, approval_id: str) -> None:
        reject = random.random() < 0.25
        comment = "not this one" if reject else "fine"
        try:
            await approvals.resolve(
                approval_id, "reject" if reject else "approve", reviewer="alice", comment=comment
            )
            self.report.decisions["rejected" if reject else "approved"] += 1
        except KeelError:  # already decided or timed out: the next list says
            self.report.decisions["resolve failed"] += 1

    async def _operator(self, stop: asyncio.Event) -> None:
        """Looks up sessions by ids that are wrong now and then (NOT_FOUND on the gRPC panel)."""
        async with open_channel(self._stack.target("agent-loop")) as channel:
            agent = AgentClient(channel, CallOptions(timeout_s=5))
            while not stop.is_set():
                await asyncio.sleep(random.uniform(3, 9))
                # NOT_FOUND is the point (and the loop may be restarting: UNAVAILABLE).
                with contextlib.suppress(KeelError):
                    await agent.get(_tag())
