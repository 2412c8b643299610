"""Durable sessions over fakes: checkpoints and resume, approvals as events, budgets,
cancellation, the episodic memory and finish hooks. A "restart" is a new Node (fresh handler,
loop and session store) over the same checkpoint store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from keel.agent.v1 import agent_pb2
from keel_agent_loop.domain import AgentLoop, LoopConfig, ToolOutcome, Usage
from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.handlers.grpc_servicer import AgentServicer
from keel_agent_loop.handlers.task_handler import TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    InMemoryCheckpoints,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_agent_loop.usecases import FrontDoor, OutagePolicy, SessionDefaults, SessionRunner
from keel_contracts.errors import NotFound, Unavailable
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalRequested,
    Envelope,
    EventData,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
)
from keel_contracts.topics import CONTROL, RESULTS, TASKS
from keel_contracts.untrusted import mark_untrusted
from keel_core.testing import InMemoryPublisher, in_memory_audit

SID = "sess-1"


class Node:
    """One agent-loop process: its own handler, loop and store; shared checkpoints."""

    def __init__(
        self,
        replies: list[Any],
        checkpoints: InMemoryCheckpoints,
        tools: FakeTools | None = None,
        *,
        window: int = 8192,
        defaults: SessionDefaults | None = None,
        checkpoint_every: int = 1,
        outages: OutagePolicy | None = None,
    ) -> None:
        self.llm = ScriptedLLM(replies)
        self.tools = tools or FakeTools()
        self.memory = FakeMemory()
        self.checkpoints = checkpoints
        self.cancels = CancelFlags()
        self.store = SessionStore()
        self.sink = RecordingSink()
        self.audit, _ = in_memory_audit("agent-loop")
        self.published = InMemoryPublisher()
        self.finished: list[tuple[str, EventData]] = []
        self.loop = AgentLoop(
            self.llm,
            self.tools,
            self.memory,
            TeeSink(self.store, self.sink),
            LoopConfig(
                "sys",
                memory_token_budget=0,
                context_window_tokens=window,
                reply_reserve_tokens=0,
                checkpoint_every=checkpoint_every,
            ),
            checkpoints=checkpoints,
            cancels=self.cancels,
        )
        self.sessions = SessionRunner(
            self.loop,
            self.store,
            self.published,
            self.audit,
            AgentMetrics(CollectorRegistry()),
            checkpoints=checkpoints,
            memory=self.memory,
            cancels=self.cancels,
            defaults=defaults,
            decision_wait_s=0,
            outages=outages or OutagePolicy(pause_s=0),
        )
        self.handler = TaskHandler(self.sessions)

        async def hook(state: Any, result: TaskCompleted | TaskFailed) -> None:
            assert self.published.envelopes(RESULTS), "hooks run after the result is published"
            self.finished.append((state.metadata.get("node_id", ""), result))

        self.sessions.add_finish_hook(hook)

    def results(self) -> list[TaskCompleted | TaskFailed]:
        out: list[TaskCompleted | TaskFailed] = []
        for e in self.published.envelopes(RESULTS):
            out.append(
                e.parse(TaskCompleted)
                if e.type == TaskCompleted.event_type
                else e.parse(TaskFailed)
            )
        return out

    def approvals(self) -> list[ApprovalRequested]:
        return [request for _, request in self.sink.approvals]


@pytest.fixture
async def nodes():  # type: ignore[no-untyped-def]
    made: list[Node] = []

    def make(*args: Any, **kw: Any) -> Node:
        node = Node(*args, **kw)
        node.audit.start()
        made.append(node)
        return node

    yield make
    for node in made:
        await node.audit.close()


def envelope(payload: EventData, session_id: str = SID) -> Envelope:
    return Envelope.wrap(payload, source="test", session_id=session_id, trace="")


def task(goal: str = "count things", **kw: Any) -> Envelope:
    return envelope(TaskSubmitted(goal=goal, **kw))


def decided(approval_id: str, outcome: str = "approved", **kw: Any) -> Envelope:
    return envelope(
        ApprovalDecided(approval_id=approval_id, outcome=outcome, reviewer="bob", **kw)  # type: ignore[arg-type]
    )


class CrashOnCall(ScriptedLLM):
    """Dies like a killed process (the handler task is cancelled) on the given LLM call."""

    def __init__(self, replies: list[Any], crash_on: int) -> None:
        super().__init__(replies)
        self._crash_on = crash_on

    async def complete(self, ctx: Any, messages: Any, tools: Any) -> Any:
        if len(self.calls) + 1 == self._crash_on:
            raise asyncio.CancelledError
        return await super().complete(ctx, messages, tools)


# --- checkpoints and resume -------------------------------------------------------------


async def test_each_iteration_is_checkpointed_and_the_finish_leaves_a_marker(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([call_tools(("count", {})), call_tools(("count", {})), answer("2")], cps)
    await node.handler(task())
    assert cps.statuses(SID) == [
        "processing_result",
        "processing_result",
        "finished:completed",
        "finished:done",
    ]
    assert cps.get(SID) is None
    marker = cps.finished(SID)
    assert marker is not None
    assert (marker.done, marker.state) == (True, None)
    assert [marker.result] == node.published.envelopes(RESULTS)  # the very envelope, same id
    assert node.results() == [TaskCompleted(answer="2", iterations=3)]


async def test_checkpoint_every_n_iterations(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    replies = [call_tools(("count", {})) for _ in range(4)] + [answer("done")]
    node = nodes(replies, cps, checkpoint_every=2)
    await node.handler(task())
    assert cps.statuses(SID) == [
        "processing_result",
        "processing_result",
        "finished:completed",
        "finished:done",
    ]
    assert [s for _, s in cps.history if s == "processing_result"] == ["processing_result"] * 2


async def test_a_killed_session_resumes_from_its_checkpoint_with_the_same_keys(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    script = [call_tools(("count", {"n": i})) for i in range(1, 4)] + [answer("counted 3")]
    first = nodes([], cps)
    first.loop._llm = CrashOnCall(list(script), crash_on=3)  # dies thinking in iteration 3
    with pytest.raises(asyncio.CancelledError):
        await first.handler(task())
    assert [e.idempotency_key for e in first.tools.executions] == [f"{SID}:1:0", f"{SID}:2:0"]
    saved = cps.get(SID)
    assert saved is not None
    assert (saved.status, saved.iteration) == ("processing_result", 2)

    second = nodes(script[2:], cps)  # the same model, at the same point of its script
    await second.handler(task())  # keel.tasks redelivers the uncommitted record
    assert second.sink.kinds()[0] == "resumed"
    assert second.sink.of_kind("resumed")[0].detail == {
        "status": "processing_result",
        "iteration": 2,
        "trigger": "task",
    }
    assert [e.idempotency_key for e in second.tools.executions] == [f"{SID}:3:0"]
    # THINK after the restart sees everything done before the crash.
    assert [m.role for m in second.llm.calls[0].messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert second.results() == [TaskCompleted(answer="counted 3", iterations=4)]
    assert cps.get(SID) is None


async def test_a_crash_mid_iteration_repeats_it_with_the_same_keys(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    script = [call_tools(("count", {}), ("slow", {})), answer("ok")]
    tools = FakeTools({"slow": asyncio.CancelledError()})  # killed while the 2nd call runs
    first = nodes(script, cps, tools)
    with pytest.raises(asyncio.CancelledError):
        await first.handler(task())
    assert cps.get(SID) is None  # no iteration finished: nothing checkpointed yet

    second = nodes(script, cps)
    await second.handler(task())
    keys = [e.idempotency_key for e in second.tools.executions]
    assert keys == [f"{SID}:1:0", f"{SID}:1:1"]  # the gateway's ledger answers the repeat


async def test_a_finished_session_is_not_run_again(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([answer("once")], cps)
    await node.handler(task())
    await node.handler(task())
    assert len(node.llm.calls) == 1
    assert [r.answer for r in node.results()] == ["once"]  # type: ignore[union-attr]


async def test_a_finish_cut_short_is_completed_with_the_identical_result(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    first = nodes([answer("done")], cps)

    async def killed(state: Any, result: Any) -> None:  # the process dies in the finish hooks
        raise asyncio.CancelledError

    first.sessions.add_finish_hook(killed)
    with pytest.raises(asyncio.CancelledError):
        await first.handler(task())
    [published] = first.published.envelopes(RESULTS)
    marker = cps.finished(SID)
    assert marker is not None
    assert not marker.done

    second = nodes([], cps)  # a fresh process; its ScriptedLLM fails if asked anything
    await second.handler(task())
    assert second.llm.calls == []
    assert second.published.envelopes(RESULTS) == [published]  # same id, same time, same data
    assert [node for node, _ in second.finished] == [""]  # the hooks ran to the end this time
    marker = cps.finished(SID)
    assert marker is not None
    assert marker.done

    third = nodes([], cps)
    await third.handler(task())
    await third.handler(decided("whatever"))
    await third.handler(envelope(TaskCancelRequested(reason="late")))
    assert third.published.envelopes(RESULTS) == []
    assert third.finished == []


async def test_a_crash_after_the_terminal_checkpoint_republishes_without_rerunning(nodes) -> None:  # type: ignore[no-untyped-def]
    # A terminal SessionCheckpoint, as versions before the end marker left it.
    cps = InMemoryCheckpoints()
    first = nodes([answer("done")], cps)
    await first.handler(task())
    # Simulate the crash before the tombstone: the terminal checkpoint is still there.
    state = first.store.get(SID)
    assert state is not None
    from keel_agent_loop.domain import AgentState

    terminal = AgentState(session_id=SID, goal="g", status="planning")
    terminal.complete("done")
    await cps.save(terminal)
    second = nodes([], cps)
    await second.handler(task())
    assert second.llm.calls == []
    assert [r.answer for r in second.results()] == ["done"]  # type: ignore[union-attr]
    assert cps.get(SID) is None


# --- approvals -----------------------------------------------------------------------------


def email_tools() -> FakeTools:
    tools = FakeTools({"send_email": ToolOutcome(status="needs_approval", rule_id="approve-send")})
    tools.approved_outcomes["send_email"] = ToolOutcome(status="ok", output="queued message 7")
    return tools


async def test_needs_approval_parks_and_a_decision_after_a_restart_resumes(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    reply = call_tools(("send_email", {"to": "bob"}), content="I will email bob")
    first = nodes([reply], cps, email_tools())
    await first.handler(task())  # returns: the record commits, other sessions get served
    assert first.results() == []
    [request] = first.approvals()
    assert request.reasoning == "I will email bob"
    assert request.arguments == {"to": "bob"}
    assert "approve-send" in request.consequences
    parked = cps.get(SID)
    assert parked is not None
    assert parked.status == "waiting_for_approval"
    assert first.sink.states()[-1] == ("executing_tool", "waiting_for_approval")

    second = nodes([answer("sent: queued message 7")], cps, email_tools())
    await second.handler(decided(request.approval_id, comment="ok"))
    [execution] = second.tools.executions
    assert execution.idempotency_key == request.idempotency_key == f"{SID}:1:0"
    assert execution.approval_id == request.approval_id
    assert second.sink.of_kind("approval_decided")[0].detail["outcome"] == "approved"
    assert second.llm.calls[0].messages[-1].content == mark_untrusted(
        "send_email", "queued message 7"
    )
    assert second.results() == [TaskCompleted(answer="sent: queued message 7", iterations=2)]
    assert cps.get(SID) is None


async def test_modified_runs_through_the_gateway_with_the_approval(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    first = nodes([call_tools(("send_email", {"to": "bob"}))], cps, email_tools())
    await first.handler(task())
    [request] = first.approvals()
    second = nodes([answer("ok")], cps, email_tools())
    await second.handler(decided(request.approval_id, "modified", modified_arguments={"to": "x"}))
    assert second.tools.executions[0].approval_id == request.approval_id
    assert second.sink.of_kind("approval_decided")[0].detail["outcome"] == "modified"


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("rejected", "REJECTED by bob: send_email was not executed"), ("timed_out", "TIMED OUT")],
)
async def test_a_refusal_reaches_the_model_as_data(nodes, outcome: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([call_tools(("send_email", {})), answer("could not send")], cps, email_tools())
    await node.handler(task())
    [request] = node.approvals()
    await node.handler(decided(request.approval_id, outcome, comment="never"))
    assert node.tools.counts["send_email"] == 1  # only the first attempt; nothing ran after
    observation = node.llm.calls[1].messages[-1]
    assert observation.role == "tool"
    assert expected in observation.content
    assert "never" in observation.content
    assert node.results() == [TaskCompleted(answer="could not send", iterations=2)]


async def test_a_redelivered_task_of_a_parked_session_asks_again_and_waits(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    first = nodes([call_tools(("send_email", {}))], cps, email_tools())
    await first.handler(task())
    second = nodes([], cps, email_tools())
    await second.handler(task())
    assert second.llm.calls == []
    assert [a.approval_id for a in second.approvals()] == [first.approvals()[0].approval_id]
    assert second.sink.kinds() == ["resumed", "approval_requested"]
    assert cps.get(SID) is not None
    assert cps.get(SID).status == "waiting_for_approval"


async def test_unknown_and_stale_decisions_are_ignored(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([call_tools(("send_email", {}))], cps, email_tools())
    await node.handler(decided("nope"))
    await node.handler(
        envelope(ApprovalDecided(approval_id="a", outcome="approved", reviewer="r"), "other")
    )
    assert node.published.sent == []
    await node.handler(task())
    await node.handler(decided("not-this-one"))
    assert cps.get(SID).status == "waiting_for_approval"  # type: ignore[union-attr]


async def test_only_the_first_decision_per_approval_is_applied(nodes) -> None:  # type: ignore[no-untyped-def]
    """Approval replicas may publish a decision twice (ADR 0014: byte-identical copies); even
    a different second decision for the same approval changes nothing once the first was
    applied."""
    cps = InMemoryCheckpoints()
    script = [call_tools(("send_email", {"to": "a"})), call_tools(("send_email", {"to": "b"}))]
    node = nodes(script, cps, email_tools())
    await node.handler(task())
    first, ran = node.approvals()[0].approval_id, dict(node.tools.counts)
    await node.handler(decided(first))
    [_, second] = node.approvals()
    after_first = dict(node.tools.counts)
    assert after_first != ran  # the approved call ran
    await node.handler(decided(first, "rejected"))
    await node.handler(decided(first))
    assert node.tools.counts == after_first
    state = cps.get(SID)
    assert state is not None
    assert state.pending_approval is not None
    assert state.pending_approval.approval_id == second.approval_id
    assert node.results() == []


async def test_several_pending_calls_are_decided_one_at_a_time(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    reply = call_tools(("send_email", {"to": "a"}), ("count", {}), ("send_email", {"to": "b"}))
    node = nodes([reply, answer("both sent")], cps, email_tools())
    await node.handler(task())
    await node.handler(decided(node.approvals()[0].approval_id))
    assert [a.idempotency_key for a in node.approvals()] == [f"{SID}:1:0", f"{SID}:1:2"]
    assert cps.get(SID).status == "waiting_for_approval"  # type: ignore[union-attr]
    await node.handler(decided(node.approvals()[1].approval_id))
    assert [m.role for m in node.llm.calls[1].messages[-4:]] == [
        "assistant",
        "tool",
        "tool",
        "tool",
    ]
    assert node.results() == [TaskCompleted(answer="both sent", iterations=2)]


async def test_a_redelivered_decision_after_a_crash_drives_the_session_on(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    script = [call_tools(("send_email", {})), call_tools(("count", {})), answer("done")]
    first = nodes(script[:1], cps, email_tools())
    await first.handler(task())
    approval_id = first.approvals()[0].approval_id
    crashing = nodes([], cps, email_tools())
    crashing.loop._llm = CrashOnCall(script[1:], crash_on=2)  # after iteration 2's checkpoint
    with pytest.raises(asyncio.CancelledError):
        await crashing.handler(decided(approval_id))
    assert cps.get(SID).iteration == 2  # type: ignore[union-attr]
    third = nodes(script[2:], cps, email_tools())
    await third.handler(decided(approval_id))  # the uncommitted decision comes back
    assert third.sink.of_kind("resumed")[0].detail["trigger"] == "decision"
    assert third.results() == [TaskCompleted(answer="done", iterations=3)]


# --- budgets ---------------------------------------------------------------------------------


async def test_a_session_over_its_token_budget_stops_with_reason_budget(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    usage = Usage(prompt_tokens=150, completion_tokens=10)
    node = nodes([call_tools(("count", {}), usage=usage) for _ in range(5)], cps)
    await node.handler(task(token_budget=300))
    [failed] = node.results()
    assert failed == TaskFailed(
        reason="budget", error="token budget of 300 exceeded: used 320", iterations=2
    )
    assert node.tools.counts["count"] == 1  # the reply over budget is not acted on
    assert cps.get(SID) is None


async def test_a_call_whose_prompt_alone_exceeds_the_budget_is_not_made(nodes) -> None:  # type: ignore[no-untyped-def]
    node = nodes([answer("never")], InMemoryCheckpoints())
    await node.handler(task(goal="x" * 400, token_budget=20))
    [failed] = node.results()
    assert isinstance(failed, TaskFailed)
    assert failed.reason == "budget"
    assert failed.error.startswith("token budget of 20 exceeded: used 0, and the next prompt")
    assert node.llm.calls == []


async def test_the_cost_budget_and_the_configured_defaults(nodes) -> None:  # type: ignore[no-untyped-def]
    defaults = SessionDefaults(token_budget=1_000_000, cost_budget_usd=0.01)
    costly = Usage(prompt_tokens=1, cost_usd=0.02)
    node = nodes(
        [call_tools(("count", {}), usage=costly)], InMemoryCheckpoints(), defaults=defaults
    )
    await node.handler(task())
    [failed] = node.results()
    assert isinstance(failed, TaskFailed)
    assert failed.reason == "budget"
    assert failed.error == "cost budget of $0.0100 exceeded: used $0.0200"
    started = node.sink.of_kind("started")[0].detail
    assert (started["token_budget"], started["cost_budget_usd"]) == (1_000_000, 0.01)


async def test_the_oldest_turns_are_trimmed_to_fit_the_window(nodes) -> None:  # type: ignore[no-untyped-def]
    tools = FakeTools({"big": ToolOutcome(status="ok", output="y" * 400)})
    node = nodes(
        [call_tools(("big", {})) for _ in range(4)] + [answer("ok")],
        InMemoryCheckpoints(),
        tools,
        window=300,
    )
    await node.handler(task(goal="the goal"))
    trimmed = node.sink.of_kind("history_trimmed")
    assert trimmed
    assert all(e.detail["dropped"] % 2 == 0 for e in trimmed)
    last_prompt = node.llm.calls[-1].messages
    assert [m.content for m in last_prompt[:2]] == ["sys", "the goal"]
    assert last_prompt[2].role == "assistant"
    assert last_prompt[2].tool_calls


# --- cancellation ----------------------------------------------------------------------------


async def test_a_running_session_stops_at_its_next_step_when_flagged(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([], cps)

    class CancelOnSecond(ScriptedLLM):
        async def complete(self, ctx: Any, messages: Any, tools: Any) -> Any:
            if len(self.calls) == 1:
                node.cancels.request(SID, "user asked")
            return await super().complete(ctx, messages, tools)

    node.loop._llm = CancelOnSecond([call_tools(("count", {}), ("count", {})) for _ in range(3)])
    await node.handler(task())
    assert node.tools.counts["count"] == 2  # iteration 2's calls never ran
    assert node.results() == [
        TaskFailed(reason="cancelled", error="cancelled: user asked", iterations=2)
    ]
    assert node.sink.states()[-1] == ("planning", "cancelled")
    assert node.sink.of_kind("cancelled")[0].detail["reason"] == "cancelled"
    assert cps.get(SID) is None
    assert node.cancels.requested(SID) is None


async def test_a_cancel_on_keel_tasks_ends_a_parked_session(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([call_tools(("send_email", {}))], cps, email_tools())
    await node.handler(task())
    await node.handler(envelope(TaskCancelRequested(reason="changed my mind")))
    assert node.results() == [
        TaskFailed(reason="cancelled", error="cancelled: changed my mind", iterations=1)
    ]
    assert cps.get(SID) is None
    assert node.store.get(SID).status == "cancelled"  # type: ignore[union-attr]
    await node.handler(decided(node.approvals()[0].approval_id))  # too late: ignored
    assert len(node.results()) == 1


async def test_a_cancel_before_start_cancels_without_thinking(nodes) -> None:  # type: ignore[no-untyped-def]
    node = nodes([answer("x")], InMemoryCheckpoints())
    node.cancels.request(SID, "early")
    await node.handler(task())
    assert node.llm.calls == []
    assert node.results()[0].reason == "cancelled"  # type: ignore[union-attr]


async def test_grpc_cancel_publishes_to_tasks_and_control() -> None:
    store, published, cps, flags = (
        SessionStore(),
        InMemoryPublisher(),
        InMemoryCheckpoints(),
        CancelFlags(),
    )
    servicer = AgentServicer(FrontDoor(store, published, checkpoints=cps, cancels=flags), 8)
    with pytest.raises(NotFound):
        await servicer.Cancel(agent_pb2.CancelRequest(session_id="ghost"), None)  # type: ignore[arg-type]
    from keel_agent_loop.domain import AgentState

    await cps.save(AgentState(session_id="parked", goal="g"))
    reply = await servicer.Cancel(agent_pb2.CancelRequest(session_id="parked", reason="r"), None)  # type: ignore[arg-type]
    assert reply.accepted
    for topic in (TASKS, CONTROL):
        [sent] = published.envelopes(topic)
        assert sent.session_id == "parked"
        assert sent.parse(TaskCancelRequested).reason == "r"
    assert flags.requested("parked") == "r"


# --- the end of a session ---------------------------------------------------------------------


async def test_an_episodic_memory_is_written_at_the_end(nodes) -> None:  # type: ignore[no-untyped-def]
    node = nodes([call_tools(("count", {})), answer("3")], InMemoryCheckpoints())
    await node.handler(task(goal="count to 3", agent_id="bot", tenant="acme"))
    [stored] = node.memory.stored
    assert stored.memory_type == "episodic"
    # Stored under the session's tenant: only that tenant recalls it.
    assert stored.ctx.tenant == "acme"
    assert stored.metadata == {
        "tenant": "acme",
        "session_id": SID,
        "agent_id": "bot",
        "outcome": "completed",
    }
    assert stored.content == (
        "Goal: count to 3\nOutcome: completed after 2 iteration(s)\nAnswer: 3\nTools used: count"
    )


async def test_a_memory_failure_never_fails_the_session(nodes) -> None:  # type: ignore[no-untyped-def]
    node = nodes([answer("fine")], InMemoryCheckpoints())
    node.memory.store_error = Unavailable("memory down")
    await node.handler(task())
    assert node.results() == [TaskCompleted(answer="fine", iterations=1)]


async def test_finish_hooks_see_subtask_metadata_after_the_result(nodes) -> None:  # type: ignore[no-untyped-def]
    node = nodes([answer("part done")], InMemoryCheckpoints())
    await node.handler(task(metadata={"plan_id": "p1", "node_id": "n1"}))
    assert node.finished == [("n1", TaskCompleted(answer="part done", iterations=1))]


# --- outages ------------------------------------------------------------------------------


async def test_a_session_parked_on_an_outage_resumes_at_that_call_after_a_crash(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    # The gateway is down, the session parks; the process is killed while it waits.
    tools = FakeTools({"count": [Unavailable("down"), asyncio.CancelledError()]})
    first = nodes([call_tools(("count", {}))], cps, tools)
    with pytest.raises(asyncio.CancelledError):
        await first.handler(task())
    parked = cps.get(SID)
    assert parked is not None
    assert (parked.status, parked.iteration, parked.messages[-1].role) == (
        "executing_tool",
        1,
        "assistant",
    )
    assert parked.stalled is not None
    assert "down" in parked.stalled.error

    second = nodes([answer("counted")], cps)  # the redelivered task, a fresh process
    await second.handler(task())
    assert [e.idempotency_key for e in second.tools.executions] == [f"{SID}:1:0"]
    assert len(second.llm.calls) == 1  # the first reply is not asked for again
    [observed] = [m.content for m in second.llm.calls[0].messages if m.role == "tool"]
    assert "count ok" in observed
    assert second.results() == [TaskCompleted(answer="counted", iterations=2)]


async def test_an_outage_past_the_limit_fails_with_reason_infrastructure(nodes) -> None:  # type: ignore[no-untyped-def]
    cps = InMemoryCheckpoints()
    node = nodes([Unavailable("llm down")], cps, outages=OutagePolicy(limit_s=0, pause_s=0))
    await node.handler(task())
    [failed] = node.results()
    assert isinstance(failed, TaskFailed)
    assert failed.reason == "infrastructure"
    assert failed.error.startswith("infrastructure: LLM gateway unavailable: llm down")
    assert node.sink.of_kind("thought") == []


class BrokerDownFor(InMemoryCheckpoints):
    """Checkpoint writes time out (the broker is down) for the first ``writes`` saves."""

    def __init__(self, writes: int) -> None:
        super().__init__()
        self.refused = writes

    async def save(self, state: Any, durable: bool = True) -> None:
        if self.refused:
            self.refused -= 1
            raise KafkaTimeoutError()
        await super().save(state, durable)


async def test_kafka_down_mid_session_parks_it_and_it_finishes_when_kafka_is_back(nodes) -> None:  # type: ignore[no-untyped-def]
    # The step's checkpoint and the parked one both time out; the third write lands.
    cps = BrokerDownFor(writes=2)
    node = nodes([call_tools(("count", {})), answer("counted")], cps)

    await node.handler(task())

    assert node.results() == [TaskCompleted(answer="counted", iterations=2)]
    assert [e.idempotency_key for e in node.tools.executions] == [f"{SID}:1:0"]
