"""Plan mode in a session: the ``plan`` tool is offered to plan-mode profiles only, a bad plan
is an error the model reads, a good one parks the session (checkpoint first, then the plan on
keel.plans) until its ``PlanFinished`` resumes it with the plan's output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.handlers.task_handler import TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.plans.session import PlanModePort
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    InMemoryCheckpoints,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_agent_loop.usecases import SessionRunner
from keel_contracts.events import Envelope, TaskCompleted, TaskSubmitted
from keel_contracts.events.plans import PlanCancelRequested, PlanFinished, PlanSubmitted
from keel_contracts.topics import PLANS, RESULTS
from keel_core.testing import InMemoryPublisher, in_memory_audit

TEAM: dict[str, Any] = {
    "nodes": [
        {
            "id": "panel",
            "kind": "plan",
            "goal": "{plan.goal}",
            "plan": {
                "nodes": [
                    {"id": "strict", "goal": "{plan.goal}", "stance": {"name": "strict"}},
                    {"id": "judge", "goal": "Judge: {deps.strict}", "depends_on": ["strict"]},
                ]
            },
        },
        {"id": "report", "goal": "Summarise: {deps.panel}", "depends_on": ["panel"]},
    ]
}


class Parts:
    def __init__(self, llm: ScriptedLLM) -> None:
        self.llm = llm
        self.tools = FakeTools()
        self.checkpoints = InMemoryCheckpoints()
        self.publisher = InMemoryPublisher()
        self.loop = AgentLoop(
            llm,
            self.tools,
            FakeMemory(),
            RecordingSink(),
            LoopConfig("rules"),
            checkpoints=self.checkpoints,
            plans=PlanModePort(self.publisher, frozenset({"planner"})),
        )

    def submitted(self) -> list[PlanSubmitted]:
        return [e.parse(PlanSubmitted) for e in self.publisher.envelopes(PLANS)]


def session(profile: str = "planner") -> AgentState:
    return AgentState(session_id="s1", goal="Should we ship on Friday?", agent_profile=profile)


async def test_a_plan_call_parks_the_session_then_its_plan_s_end_answers_it() -> None:
    parts = Parts(ScriptedLLM([call_tools(("plan", TEAM)), answer("We ship, with a rollback.")]))
    state = await parts.loop.run(session())

    assert "plan" in [t.name for t in parts.llm.calls[0].tools]
    assert (state.status, state.pending_plan is not None) == ("waiting_for_plan", True)
    # Durable before the plan exists: the parked checkpoint, then the submission.
    assert parts.checkpoints.statuses("s1")[-1] == "waiting_for_plan"
    (submitted,) = parts.submitted()
    assert submitted.parent_session_id == "s1"
    assert submitted.plan.plan_id == "s1.plan-1-0"
    assert submitted.plan.goal == "Should we ship on Friday?"
    assert submitted.plan.node("panel").plan is not None
    assert parts.tools.executions == []  # the tool gateway never saw the call

    ended = PlanFinished(plan_id="s1.plan-1-0", status="succeeded", output="Summary: go")
    state = await parts.loop.plan_finished(state, ended)
    assert (state.status, state.answer) == ("completed", "We ship, with a rollback.")
    tool_message = parts.llm.calls[1].messages[-1]
    assert (tool_message.role, tool_message.name) == ("tool", "plan")
    assert "Summary: go" in tool_message.content
    assert 'trust="untrusted"' in tool_message.content


async def test_the_end_of_another_plan_changes_nothing() -> None:
    parts = Parts(ScriptedLLM([call_tools(("plan", TEAM))]))
    state = await parts.loop.run(session())
    other = PlanFinished(plan_id="s1.plan-9-0", status="succeeded", output="no")
    state = await parts.loop.plan_finished(state, other)
    assert state.status == "waiting_for_plan"
    assert len(parts.llm.calls) == 1


async def test_a_parked_session_submits_the_same_plan_again_after_a_restart() -> None:
    parts = Parts(ScriptedLLM([call_tools(("plan", TEAM))]))
    await parts.loop.run(session())
    restored = parts.checkpoints.get("s1")
    assert restored is not None
    await parts.loop.resubmit_plan(restored)
    first, again = parts.submitted()
    assert first == again


async def test_cancelling_a_session_parked_on_its_plan_cancels_the_plan() -> None:
    parts = Parts(ScriptedLLM([call_tools(("plan", TEAM))]))
    await parts.loop.run(session())
    parked = parts.checkpoints.get("s1")  # cancelled where it is parked: from its checkpoint
    assert parked is not None
    await parts.loop.cancel(parked, "not needed any more")
    assert parked.status == "cancelled"
    cancels = [
        e.parse(PlanCancelRequested)
        for e in parts.publisher.envelopes(PLANS)
        if e.type == PlanCancelRequested.event_type
    ]
    assert cancels == [
        PlanCancelRequested(
            plan_id="s1.plan-1-0", reason="not needed any more", requested_by="session:s1"
        )
    ]
    assert [(r.key or b"").decode() for r in parts.publisher.sent if r.topic == PLANS] == [
        "s1.plan-1-0",
        "s1.plan-1-0",
    ]


async def test_cancelling_a_session_that_waits_for_no_plan_sends_no_plan_cancel() -> None:
    parts = Parts(ScriptedLLM([answer("done")]))
    state = session()
    await parts.loop.cancel(state, "stop")
    assert state.status == "cancelled"
    assert parts.publisher.envelopes(PLANS) == []


async def test_a_bad_plan_is_an_error_the_model_reads_and_nothing_is_submitted() -> None:
    looping = {"nodes": [{"id": "a", "goal": "x", "depends_on": ["a"]}]}
    parts = Parts(ScriptedLLM([call_tools(("plan", looping)), answer("I will answer myself.")]))
    state = await parts.loop.run(session())
    assert state.status == "completed"
    assert parts.submitted() == []
    error = parts.llm.calls[1].messages[-1].content
    assert "ERROR" in error
    assert "cycle: a -> a" in error


async def test_a_failed_plan_reaches_the_model_as_an_error() -> None:
    parts = Parts(ScriptedLLM([call_tools(("plan", TEAM)), answer("The plan failed.")]))
    state = await parts.loop.run(session())
    failed = PlanFinished(plan_id="s1.plan-1-0", status="failed", error="node report failed")
    state = await parts.loop.plan_finished(state, failed)
    assert state.status == "completed"
    assert "node report failed" in parts.llm.calls[1].messages[-1].content


async def test_other_profiles_are_not_offered_the_plan_tool() -> None:
    parts = Parts(ScriptedLLM([call_tools(("plan", TEAM)), answer("done")]))
    state = await parts.loop.run(session(profile="default"))
    assert "plan" not in [t.name for t in parts.llm.calls[0].tools]
    assert parts.submitted() == []
    assert [e.call.name for e in parts.tools.executions] == ["plan"]  # an ordinary tool call
    assert state.status == "completed"


class Worker:
    """One agent-loop process (handler, runner, loop, store) over shared checkpoints."""

    def __init__(self, replies: list[Any], checkpoints: InMemoryCheckpoints) -> None:
        self.llm = ScriptedLLM(replies)
        self.published = InMemoryPublisher()
        self.audit, _ = in_memory_audit("agent-loop")
        store = SessionStore()
        loop = AgentLoop(
            self.llm,
            FakeTools(),
            FakeMemory(),
            TeeSink(store, RecordingSink()),
            LoopConfig("rules", memory_token_budget=0),
            checkpoints=checkpoints,
            plans=PlanModePort(self.published, frozenset({"planner"})),
        )
        runner = SessionRunner(
            loop,
            store,
            self.published,
            self.audit,
            AgentMetrics(CollectorRegistry()),
            checkpoints=checkpoints,
            decision_wait_s=0,
        )
        self.handler = TaskHandler(runner)

    def submitted(self) -> list[str]:
        return [e.parse(PlanSubmitted).plan.plan_id for e in self.published.envelopes(PLANS)]

    def results(self) -> list[TaskCompleted]:
        return [e.parse(TaskCompleted) for e in self.published.envelopes(RESULTS)]


@pytest.fixture
async def workers() -> AsyncIterator[Callable[[list[Any], InMemoryCheckpoints], Worker]]:
    made: list[Worker] = []

    def make(replies: list[Any], checkpoints: InMemoryCheckpoints) -> Worker:
        worker = Worker(replies, checkpoints)
        worker.audit.start()
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.audit.close()


async def test_a_session_parked_on_a_plan_survives_a_restart_and_resumes_on_its_end(
    workers: Callable[[list[Any], InMemoryCheckpoints], Worker],
) -> None:
    checkpoints = InMemoryCheckpoints()
    task = Envelope.wrap(
        TaskSubmitted(goal="Should we ship on Friday?", agent_profile="planner"),
        source="test",
        session_id="s9",
    )
    first = workers([call_tools(("plan", TEAM))], checkpoints)
    await first.handler(task)
    assert first.submitted() == ["s9.plan-1-0"]
    parked = checkpoints.get("s9")
    assert parked is not None
    assert parked.status == "waiting_for_plan"

    # The process dies; the task is redelivered to a fresh one, which submits the plan again
    # (the orchestrator ignores a plan it knows) and stays parked without asking the model.
    second = workers([answer("Ship it, with a rollback ready.")], checkpoints)
    await second.handler(task)
    assert second.submitted() == ["s9.plan-1-0"]
    assert second.llm.calls == []

    ended = PlanFinished(plan_id="s9.plan-1-0", status="succeeded", output="Summary: go")
    await second.handler(Envelope.wrap(ended, source="agent-loop.plans", session_id="s9"))
    (result,) = second.results()
    assert result.answer == "Ship it, with a rollback ready."
    assert "Summary: go" in second.llm.calls[0].messages[-1].content
    # A repeated end (at-least-once) finds the session finished: nothing more is published.
    await second.handler(Envelope.wrap(ended, source="agent-loop.plans", session_id="s9"))
    assert len(second.results()) == 1


async def test_the_plan_is_the_sessions_tenants_whatever_the_model_wrote() -> None:
    """A model cannot move work to another tenant: the tenant is not offered in the plan
    tool's schema, and one written anyway is replaced by the session's."""
    elsewhere = {**TEAM, "tenant": "elsewhere"}
    parts = Parts(ScriptedLLM([call_tools(("plan", elsewhere)), answer("done")]))
    state = session().model_copy(update={"tenant": "acme"})
    await parts.loop.run(state)
    (submitted,) = parts.submitted()
    assert submitted.plan.tenant == "acme"
    (plan_tool,) = [t for t in parts.llm.calls[0].tools if t.name == "plan"]
    assert "tenant" not in plan_tool.parameters_json_schema
