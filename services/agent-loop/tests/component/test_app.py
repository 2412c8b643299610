"""The agent loop's real composition root on an in-memory runtime: records on the in-memory
bus drive sessions through the real consumer, use cases, loop and gRPC clients (to the
llm-gateway, tool-gateway and memory faked as in-process gRPC servicers), and the
AgentService answers on a real loopback server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.app import SERVICE, build
from keel_agent_loop.config import Settings
from keel_agent_loop.errors import GuardsFileError
from keel_clients import AgentClient, open_channel
from keel_clients.testing import (
    ExecuteCall,
    FakeLLMGateway,
    FakeMemoryService,
    FakeToolGateway,
    serving,
)
from keel_contracts.approvals import decision_for, sign_event
from keel_contracts.chat import ChatMessage, LLMReply, ToolCall, ToolSpec, Usage
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalRequested,
    AuditRecord,
    Envelope,
    EventData,
    SessionFinished,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskSubmitted,
)
from keel_contracts.memory import MemoryHit
from keel_contracts.tools import ToolOutcome
from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    APPROVAL_REQUESTS,
    AUDIT,
    CHECKPOINTS,
    CONTROL,
    RESULTS,
    TASK_EVENTS,
    TASKS,
    dlq_of,
)
from keel_core import trust
from keel_core.testing import InMemoryBus, InMemoryRuntime
from keel_core.trust import TrustSettings

SID = "sess-1"
TRACE = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
USAGE = Usage(prompt_tokens=10, completion_tokens=3, cost_usd=0.001)
SCHEMA = json.dumps({"type": "object"})
CATALOG = {
    "default": [
        ToolSpec(name=n, description=n, parameters_json_schema=SCHEMA)
        for n in ("calculator", "send_email")
    ]
}


def reply(content: str = "", *calls: tuple[str, dict[str, Any]]) -> LLMReply:
    tool_calls = tuple(
        ToolCall(id=f"c{i}", name=name, arguments_json=json.dumps(args))
        for i, (name, args) in enumerate(calls)
    )
    message = ChatMessage(role="assistant", content=content, tool_calls=tool_calls)
    return LLMReply(message=message, usage=USAGE, model="scripted")


def run_tool(execute: ExecuteCall) -> ToolOutcome:
    """``calculator`` runs at once; ``send_email`` needs a person's approval first."""
    if execute.call.name == "send_email" and not execute.approval_id:
        return ToolOutcome(status="needs_approval", rule_id="approve-sends")
    return ToolOutcome(status="ok", output="4")


@dataclass
class Service:
    """The built agent loop, started, and its faked peers."""

    runtime: InMemoryRuntime
    llm: FakeLLMGateway
    tools: FakeToolGateway
    memory: FakeMemoryService
    agent: AgentClient

    async def publish(self, topic: str, payload: EventData) -> None:
        envelope = Envelope.wrap(payload, source="test", session_id=SID, trace=TRACE)
        await self.runtime.producer.publish(topic, envelope, key=SID)
        await self.runtime.settle()

    def progress(self) -> list[TaskProgress]:
        return [e.parse(TaskProgress) for e in self.runtime.bus.envelopes(TASK_EVENTS)]

    def results(self) -> list[TaskCompleted | TaskFailed]:
        return [
            e.parse(TaskCompleted) if e.type == TaskCompleted.event_type else e.parse(TaskFailed)
            for e in self.runtime.bus.envelopes(RESULTS)
        ]


@contextlib.asynccontextmanager
async def running_service(
    script: list[LLMReply], bus: InMemoryBus | None = None, **settings: Any
) -> AsyncIterator[Service]:
    """The agent loop built and started over ``bus`` (a new one by default: a second
    process over the same bus is a restart), with its peers faked in-process."""
    llm = FakeLLMGateway(script)
    tools = FakeToolGateway(CATALOG, run_tool)
    memory = FakeMemoryService([MemoryHit(id="m0", type="semantic", content="likes to add sums")])
    async with serving(
        (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (tools, tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (memory, memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as target:
        config = Settings(llm_target=target, tool_target=target, memory_target=target, **settings)
        runtime = InMemoryRuntime(SERVICE, config, bus)
        build(config, runtime)
        async with runtime.running(), open_channel(runtime.target) as channel:
            yield Service(runtime, llm, tools, memory, AgentClient(channel))


@pytest.fixture
async def service(request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    async with running_service(getattr(request, "param", [])) as started:
        yield started


@pytest.mark.parametrize(
    "service", [[reply("", ("calculator", {"expression": "2+2"})), reply("2+2 = 4")]], indirect=True
)
async def test_a_task_on_keel_tasks_runs_to_its_answer(service: Service) -> None:

    await service.publish(TASKS, TaskSubmitted(goal="add 2+2", agent_id="bot", max_iterations=4))

    assert service.results() == [
        TaskCompleted(
            answer="2+2 = 4", iterations=2, prompt_tokens=20, completion_tokens=6, cost_usd=0.002
        )
    ]
    kinds = [p.kind for p in service.progress() if p.kind != "state"]
    assert kinds == ["started", "thought", "tool_call", "tool_result", "thought", "completed"]
    [tool_result] = [p for p in service.progress() if p.kind == "tool_result"]
    assert (tool_result.detail["status"], tool_result.detail["output"]) == ("ok", "4")
    # The real clients carried the session to the peers: memory in the prompt, the tool key.
    # (Recalled memory follows the goal, as marked data in a user message.)
    assert "likes to add sums" in service.llm.requests[0].messages[2].content
    assert service.llm.requests[0].traceparent.split("-")[1] == TRACE.split("-")[1]
    assert [e.idempotency_key for e in service.tools.calls] == [f"{SID}:1:0"]
    [episode] = [e for e in service.memory.entries if e.type == "episodic"]
    assert episode.metadata["session_id"] == SID
    got = await service.agent.get(SID)
    assert got.status == "completed"
    assert (got.answer, got.iterations) == ("2+2 = 4", 2)
    # Finished: the checkpoint is replaced by the end marker holding the very result envelope
    # that was published; the audit trail and the metrics say so.
    [marker] = service.runtime.bus.parsed(CHECKPOINTS, SessionFinished)[-1:]
    assert marker.done
    assert marker.state == {}
    assert marker.result == service.runtime.bus.envelopes(RESULTS)[0].model_dump(mode="json")
    actions = [r.action for r in service.runtime.bus.parsed(AUDIT, AuditRecord)]
    assert actions == ["task.started", "task.completed"]
    sessions = service.runtime.registry.get_sample_value(
        "keel_agent_sessions_total", {"outcome": "completed", "reason": ""}
    )
    assert sessions == 1.0


@pytest.mark.parametrize(
    "service", [[reply("", ("send_email", {"to": "bob"})), reply("sent")]], indirect=True
)
async def test_a_parked_session_resumes_on_the_decision(service: Service) -> None:
    await service.publish(TASKS, TaskSubmitted(goal="mail bob"))
    [request] = service.runtime.bus.parsed(APPROVAL_REQUESTS, ApprovalRequested)
    assert service.results() == []

    await service.publish(APPROVAL_DECISIONS, signed(decided(request)))

    assert service.results() == [
        TaskCompleted(
            answer="sent", iterations=2, prompt_tokens=20, completion_tokens=6, cost_usd=0.002
        )
    ]
    assert [e.approval_id for e in service.tools.calls] == ["", request.approval_id]


def decided(request: ApprovalRequested, **changes: Any) -> ApprovalDecided:
    """The decision the approval service would publish for ``request`` (unsigned)."""
    expiry = datetime.now(UTC) + timedelta(hours=1)
    return decision_for(request, SID, "approved", "ann", expiry).model_copy(update=changes)


def signed(decision: ApprovalDecided) -> ApprovalDecided:
    signer = trust.load(TrustSettings(), "test")
    assert signer is not None  # the root conftest sets KEEL_TRUST_DIR
    return sign_event(decision, signer.approval_signer())


FORGERIES = {
    "unsigned": lambda r: decided(r),
    "badly signed": lambda r: decided(r, signature=signed(decided(r)).signature[::-1]),
    "modified after signing": lambda r: signed(decided(r)).model_copy(
        update={"outcome": "modified", "modified_arguments": {"to": "eve"}}
    ),
    "expired": lambda r: signed(
        decided(r, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    ),
    "other session": lambda r: signed(decided(r, session_id="someone-else")),
    "other tenant": lambda r: signed(decided(r, tenant="other")),
    "other tool": lambda r: signed(decided(r, tool_name="delete_everything")),
    "other arguments": lambda r: signed(decided(r, arguments_hash="0" * 64)),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
@pytest.mark.parametrize(
    "service", [[reply("", ("send_email", {"to": "bob"})), reply("sent")]], indirect=True
)
async def test_a_decision_the_approval_service_did_not_sign_for_this_call_is_refused(
    service: Service, forgery: str
) -> None:
    """Whoever can write keel.approval.decisions cannot resume a parked session: the record is
    dead-lettered with the reason, audited as security.denied, and nothing runs."""
    await service.publish(TASKS, TaskSubmitted(goal="mail bob"))
    [request] = service.runtime.bus.parsed(APPROVAL_REQUESTS, ApprovalRequested)

    await service.publish(APPROVAL_DECISIONS, FORGERIES[forgery](request))

    assert service.results() == []
    assert [e.approval_id for e in service.tools.calls] == [""]
    [dead] = service.runtime.bus.records(dlq_of(APPROVAL_DECISIONS))
    assert "approval decision refused" in dict(dead.headers)["keel-dlq-reason"].decode()
    denied = [
        r for r in service.runtime.bus.parsed(AUDIT, AuditRecord) if r.action == "security.denied"
    ]
    assert [(r.subject, bool(r.details["reason"])) for r in denied] == [(request.approval_id, True)]
    # The session still waits, and the real decision resumes it.
    await service.publish(APPROVAL_DECISIONS, signed(decided(request)))
    assert [r.answer for r in service.results()] == ["sent"]


@pytest.mark.parametrize("service", [[reply("", ("send_email", {"to": "bob"}))]], indirect=True)
async def test_cancel_ends_a_parked_session(service: Service) -> None:
    await service.publish(TASKS, TaskSubmitted(goal="mail bob"))
    parked = await service.agent.get(SID)
    assert parked.status == "running"

    accepted = await service.agent.cancel(SID, "changed my mind")
    await service.runtime.settle()

    assert accepted
    assert service.results() == [
        TaskFailed(reason="cancelled", error="cancelled: changed my mind", iterations=1)
    ]
    [broadcast] = service.runtime.bus.parsed(CONTROL, TaskCancelRequested)
    assert broadcast.requested_by == "AgentService.Cancel"
    got = await service.agent.get(SID)
    assert got.status == "cancelled"


async def test_a_cancel_heard_on_keel_control_stops_the_session(service: Service) -> None:
    # Only on the broadcast topic: the control follower must raise the flag for the task.
    await service.publish(CONTROL, TaskCancelRequested(reason="stop", requested_by="ops"))
    await service.publish(TASKS, TaskSubmitted(goal="add 2+2"))

    assert service.llm.requests == []
    assert service.results() == [
        TaskFailed(reason="cancelled", error="cancelled: stop", iterations=0)
    ]


# --- exactly one result per session --------------------------------------------------------


async def test_a_finished_task_redelivered_to_a_fresh_process_runs_nothing() -> None:
    """The chaos run's duplicate: after a restart the commit point lags and the finished
    session's task comes again, to a process that never ran it. The end marker in
    keel.checkpoints (not the first process's memory) stops it: no model call, no tool call,
    no second result; a late cancel changes nothing either."""
    script = [reply("", ("calculator", {"expression": "2+2"})), reply("2+2 = 4")]
    async with running_service(script) as first:
        await first.publish(TASKS, TaskSubmitted(goal="add 2+2", max_iterations=4))
    bus = first.runtime.bus
    [task_record] = bus.records(TASKS)
    [result] = bus.envelopes(RESULTS)
    assert len(first.tools.calls) == 1

    async with running_service(script, bus) as fresh:
        # keel.tasks delivers the uncommitted record again, this time to the fresh process.
        bus.append(TASKS, task_record.value, task_record.key, task_record.headers)
        await fresh.runtime.settle()
        await fresh.publish(TASKS, TaskCancelRequested(reason="late"))

        assert fresh.llm.requests == []
        assert fresh.tools.calls == []
        assert bus.envelopes(RESULTS) == [result]  # not even the same result again
        assert bus.records(f"{TASKS}.dlq") == []
        assert not await fresh.agent.cancel(SID, "too late")  # finished: not accepted


# --- outages are waited out, never shown to the model ---------------------------------------

# Short enough for a test: a step retries for 50 ms, then parks for 10 ms and tries again.
OUTAGE = {
    "outage_step_deadline_s": 0.05,
    "retry_backoff_s": 0.005,
    "outage_backoff_max_s": 0.01,
}


async def test_a_tool_gateway_outage_is_waited_out_and_never_reaches_the_model() -> None:
    script = [reply("", ("calculator", {"expression": "2+2"})), reply("2+2 = 4")]
    async with running_service(script, outage_limit_s=30.0, **OUTAGE) as service:
        service.tools.unavailable = 25  # down for a while (several parks), then back
        await service.publish(TASKS, TaskSubmitted(goal="add 2+2", max_iterations=4))

        assert service.tools.unavailable == 0
        assert service.results() == [
            TaskCompleted(
                answer="2+2 = 4",
                iterations=2,
                prompt_tokens=20,
                completion_tokens=6,
                cost_usd=0.002,
            )
        ]
        assert len(service.tools.calls) == 1  # the tool ran exactly once
        assert len(service.llm.requests) == 2  # and the model was not asked again
        shown = [m.content for r in service.llm.requests for m in r.messages]
        assert not [c for c in shown if "UNAVAILABLE" in c or "tool gateway" in c]
        [tool_result] = [p for p in service.progress() if p.kind == "tool_result"]
        assert tool_result.detail["status"] == "ok"


async def test_a_permanent_outage_fails_the_session_with_reason_infrastructure() -> None:
    script = [reply("", ("calculator", {"expression": "2+2"})), reply("2+2 = 4")]
    async with running_service(script, outage_limit_s=0.1, **OUTAGE) as service:
        service.tools.unavailable = 10**9
        await service.publish(TASKS, TaskSubmitted(goal="add 2+2", max_iterations=4))

        [failed] = service.results()
        assert isinstance(failed, TaskFailed)
        assert (failed.reason, failed.iterations) == ("infrastructure", 1)
        assert failed.error.startswith("infrastructure: tool gateway unavailable")
        assert service.tools.calls == []
        assert len(service.llm.requests) == 1  # the model never saw the outage
        assert [p for p in service.progress() if p.kind == "tool_result"] == []
        labels = {"outcome": "failed", "reason": "infrastructure"}
        assert service.runtime.registry.get_sample_value("keel_agent_sessions_total", labels)


async def test_a_guards_file_redacts_the_published_answer_and_audits_it(tmp_path: Path) -> None:
    guards = tmp_path / "guards.yaml"
    guards.write_text("rules: [{id: keys, match: answer, regex: 'sk-\\w{8,}', verdict: redact}]\n")
    script = [reply("the key is sk-12345678abc")]
    async with running_service(script, guards_file=str(guards)) as service:
        await service.publish(TASKS, TaskSubmitted(goal="what is the key?"))
        [result] = service.results()
        records = service.runtime.bus.parsed(AUDIT, AuditRecord)
    assert isinstance(result, TaskCompleted)
    assert result.answer == "the key is [redacted]"
    [redacted] = [r for r in records if r.action == "guard.redact"]
    assert (redacted.subject, redacted.details["rule"]) == ("answer", "keys")
    assert "guards.loaded" in [r.action for r in records]


async def test_a_guards_file_that_does_not_validate_stops_the_build(tmp_path: Path) -> None:
    """Async because build() opens gRPC channels, which need a running loop (a sync test finds
    none once an earlier test has closed its own)."""
    guards = tmp_path / "guards.yaml"
    guards.write_text("rules: [{id: keys, match: answer, verdict: redact}]\n")
    config = Settings(guards_file=str(guards))
    with pytest.raises(GuardsFileError, match=r"guards.yaml:1: rules.0"):
        build(config, InMemoryRuntime(SERVICE, config))
