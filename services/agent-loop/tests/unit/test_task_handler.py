"""The keel.tasks handler: poison handling, results on keel.results, audit, no double runs."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from keel_agent_loop.domain import AgentLoop, LoopConfig, SessionStore, ToolOutcome, Usage
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.handlers.task_handler import TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_agent_loop.usecases import SessionRunner
from keel_contracts.events import (
    ApprovalVoted,
    Envelope,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskSubmitted,
)
from keel_contracts.topics import RESULTS
from keel_core.bus import PoisonMessage
from keel_core.testing import InMemoryPublisher, in_memory_audit

TRACE = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


class Harness:
    def __init__(self, replies: list[object]) -> None:
        self.llm = ScriptedLLM(replies)  # type: ignore[arg-type]
        self.tools = FakeTools({"calculator": ToolOutcome(status="ok", output="4")})
        self.store = SessionStore()
        self.sink = RecordingSink()
        self.registry = CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.audit, self.audit_log = in_memory_audit("agent-loop")
        self.published = InMemoryPublisher()
        loop = AgentLoop(
            self.llm,
            self.tools,
            FakeMemory(),
            TeeSink(self.store, self.sink),
            LoopConfig("sys"),
            observer=self.metrics,
        )
        self.handler = TaskHandler(
            SessionRunner(loop, self.store, self.published, self.audit, self.metrics)
        )

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})


@pytest.fixture
async def harness_factory():  # type: ignore[no-untyped-def]
    made: list[Harness] = []

    def make(replies: list[object]) -> Harness:
        h = Harness(replies)
        h.audit.start()
        made.append(h)
        return h

    yield make
    for h in made:
        await h.audit.close()


def task(goal: str = "add 2+2", session_id: str = "sess-1", **kw: object) -> Envelope:
    return Envelope.wrap(
        TaskSubmitted(goal=goal, **kw),  # type: ignore[arg-type]
        source="test",
        session_id=session_id,
        trace=TRACE,
    )


async def test_runs_the_task_and_publishes_the_result(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory(
        [
            call_tools(("calculator", {"e": "2+2"}), usage=Usage(prompt_tokens=5)),
            answer("4", usage=Usage(prompt_tokens=7, completion_tokens=1, cost_usd=0.01)),
        ]
    )
    await h.handler(task(agent_id="bot", agent_profile="math"))

    [result] = h.published.envelopes(RESULTS)
    assert result.type == "keel.task.completed"
    assert result.source == "agent-loop"
    assert result.session_id == "sess-1"
    assert result.trace == TRACE
    assert result.parse(TaskCompleted) == TaskCompleted(
        answer="4", iterations=2, prompt_tokens=12, completion_tokens=1, cost_usd=0.01
    )
    assert h.published.sent[0].key == b"sess-1"

    records = h.audit_log.audit_records()
    assert [r.action for r in records] == ["task.started", "task.completed"]
    assert records[0].actor == "bot"
    assert records[0].subject == "sess-1"
    assert records[0].details == {
        "goal": "add 2+2",
        "agent_profile": "math",
        "tenant": "default",
        "max_iterations": 8,
        "token_budget": None,
        "cost_budget_usd": None,
    }
    assert records[1].details["iterations"] == 2
    assert h.audit_log.envelopes("keel.audit")[0].session_id == "sess-1"

    record = h.store.get("sess-1")
    assert record is not None
    assert (record.status, record.answer, record.iteration) == ("completed", "4", 2)
    assert h.llm.calls[0].ctx.agent_profile == "math"
    assert h.sample("keel_agent_sessions_total", {"outcome": "completed", "reason": ""}) == 1
    assert h.sample("keel_agent_tool_results_total", {"tool": "calculator", "status": "ok"}) == 1
    assert h.sample("keel_agent_iterations_to_completion_count", {"outcome": "completed"}) == 1


async def test_a_failed_session_publishes_task_failed(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory([call_tools(("calculator", {}))])
    await h.handler(task(max_iterations=1))

    [result] = h.published.envelopes(RESULTS)
    assert result.parse(TaskFailed) == TaskFailed(
        reason="iteration_limit", error="no final answer after 1 iterations", iterations=1
    )
    actions = [r.action for r in h.audit_log.audit_records()]
    assert actions == ["task.started", "task.failed"]
    assert h.audit_log.audit_records()[1].details["reason"] == "iteration_limit"
    labels = {"outcome": "failed", "reason": "iteration_limit"}
    assert h.sample("keel_agent_sessions_total", labels) == 1


async def test_a_finished_session_is_not_run_again(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory([answer("once")])
    await h.handler(task())
    await h.handler(task())  # redelivered: ScriptedLLM would fail if asked again

    assert len(h.published.envelopes(RESULTS)) == 1  # nothing new is published
    assert len(h.llm.calls) == 1
    assert [r.action for r in h.audit_log.audit_records()] == ["task.started", "task.completed"]


async def test_a_poison_envelope_raises_poison_message(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory([])
    wrong = Envelope.wrap(
        TaskProgress(kind="started", iteration=0), source="test", session_id="sess-1"
    )
    with pytest.raises(PoisonMessage, match="does not handle"):
        await h.handler(wrong)
    assert h.published.sent == []


async def test_a_quorum_vote_passes_without_touching_the_session(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory([])
    vote = ApprovalVoted(approval_id="a-1", reviewer="alice", approvals=["alice"], required=2)
    await h.handler(Envelope.wrap(vote, source="approval", session_id="sess-1"))
    assert h.published.sent == []
    assert h.llm.calls == []


async def test_an_invalid_payload_raises_validation_error(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory([])
    bad = Envelope(type="keel.task.submitted", source="test", session_id="s", data={"goal": ""})
    with pytest.raises(ValidationError):
        await h.handler(bad)


async def test_a_bug_fails_the_session_and_is_raised_for_the_dlq(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h = harness_factory([RuntimeError("bug in a port")])
    with pytest.raises(RuntimeError, match="bug in a port"):
        await h.handler(task())
    [result] = h.published.envelopes(RESULTS)
    failed = result.parse(TaskFailed)
    assert failed.reason == "error"
    assert failed.error == "internal error: RuntimeError: bug in a port"
    assert [r.action for r in h.audit_log.audit_records()] == ["task.started", "task.failed"]
