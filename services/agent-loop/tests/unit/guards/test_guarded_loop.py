"""The guard stage in the loop, over fake ports: what each verdict does to a session, and how
a person's decision on a held answer or an escalation drives it on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, ToolOutcome
from keel_agent_loop.domain.guarding import CONTINUE_SESSION, PUBLISH_ANSWER
from keel_agent_loop.guards import AuditedGuards, GuardEngine, GuardHolder, GuardsDocument
from keel_agent_loop.guards.reloader import GuardsReloader, load_holder
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    InMemoryCheckpoints,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_contracts.events import ApprovalDecided

KEY = "sk-" + "Q9w8" * 6
RULES: dict[str, Any] = {
    "rules": [
        {"id": "api-key", "match": "answer", "regex": r"sk-[A-Za-z0-9]{16,}", "verdict": "redact"},
        {"id": "no-zeus", "match": "answer", "deny_terms": ["zeus"], "verdict": "block"},
        {"id": "mail-key", "match": "send_email", "regex": r"sk-\w+", "verdict": "redact"},
        {"id": "no-rm", "match": "shell", "regex": "rm -rf", "verdict": "block"},
        {"id": "pay", "match": "pay", "regex": ".", "verdict": "require_approval"},
    ],
    "escalation": {"hedging": ["not sure"], "tool_errors": 2},
}


class RecordingAudit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    async def record(self, action: str, *, actor: str, subject: str, **kw: Any) -> None:
        self.records.append((action, subject, kw.get("details") or {}))


def make(
    llm: ScriptedLLM, tools: FakeTools | None = None
) -> tuple[AgentLoop, RecordingSink, FakeTools, RecordingAudit]:
    sink, audit = RecordingSink(), RecordingAudit()
    tools = tools or FakeTools({"calculator": ToolOutcome(status="ok", output="42")})
    holder = GuardHolder(GuardEngine(GuardsDocument.model_validate(RULES)), "test")
    loop = AgentLoop(
        llm,
        tools,
        FakeMemory(),
        sink,
        LoopConfig("system", memory_token_budget=300),
        checkpoints=InMemoryCheckpoints(),
        guards=AuditedGuards(holder, audit),
    )
    return loop, sink, tools, audit


def new_state() -> AgentState:
    return AgentState(session_id="s1", goal="g", agent_id="a1", agent_profile="analyst")


def decision(state: AgentState, outcome: str, **kw: Any) -> ApprovalDecided:
    assert state.pending_approval is not None
    return ApprovalDecided(
        approval_id=state.pending_approval.approval_id,
        outcome=outcome,  # type: ignore[arg-type]
        reviewer="rita",
        **kw,
    )


async def test_a_secret_in_the_answer_is_redacted_before_it_is_published() -> None:
    loop, sink, _, audit = make(ScriptedLLM([answer(f"the key is {KEY}.")]))
    state = await loop.run(new_state())
    assert (state.status, state.answer) == ("completed", "the key is [redacted].")
    assert KEY not in json.dumps([e.detail for _, e in sink.events])
    assert audit.records == [
        ("guard.redact", "answer", audit.records[0][2]),
    ]
    assert audit.records[0][2]["rule"] == "api-key"


async def test_a_blocked_answer_fails_the_session_with_the_rule() -> None:
    loop, _, _, audit = make(ScriptedLLM([answer("Operation Zeus is go")]))
    state = await loop.run(new_state())
    assert state.status == "failed"
    assert state.error is not None
    assert "guard rule no-zeus" in state.error
    assert [a for a, _, _ in audit.records] == ["guard.block"]


async def test_a_hedging_answer_parks_and_approval_publishes_it() -> None:
    loop, sink, _, audit = make(ScriptedLLM([answer("I am not sure, maybe 41")]))
    state = await loop.run(new_state())
    assert state.status == "waiting_for_approval"
    request = sink.approvals[-1][1]
    assert request.tool_name == PUBLISH_ANSWER
    assert request.arguments["answer"] == "I am not sure, maybe 41"
    assert "hedges" in request.reasoning
    assert "escalation.hedging" in request.reasoning
    assert [a for a, _, _ in audit.records] == ["guard.require_approval"]

    state = await loop.decide(state, decision(state, "approved"))
    assert (state.status, state.answer) == ("completed", "I am not sure, maybe 41")


async def test_a_modified_decision_publishes_the_reviewers_answer() -> None:
    loop, _, _, _ = make(ScriptedLLM([answer("not sure: 41?")]))
    state = await loop.run(new_state())
    modified = decision(state, "modified", modified_arguments={"answer": "It is 42."})
    state = await loop.decide(state, modified)
    assert (state.status, state.answer) == ("completed", "It is 42.")


async def test_a_rejected_answer_fails_the_session_with_the_reviewers_note() -> None:
    loop, _, _, _ = make(ScriptedLLM([answer("not sure at all")]))
    state = await loop.run(new_state())
    state = await loop.decide(state, decision(state, "rejected", comment="ask finance"))
    assert state.status == "failed"
    assert state.error is not None
    assert "rejected by rita: ask finance" in state.error


async def test_tool_arguments_are_redacted_before_the_gateway_sees_them() -> None:
    llm = ScriptedLLM(
        [call_tools(("send_email", {"to": "bob", "body": f"key {KEY}"})), answer("sent")]
    )
    loop, _, tools, _ = make(llm, FakeTools({"send_email": ToolOutcome(status="ok")}))
    state = await loop.run(new_state())
    assert state.status == "completed"
    sent = json.loads(tools.executions[0].call.arguments_json)
    assert sent == {"to": "bob", "body": "key [redacted]"}


async def test_a_blocked_call_is_refused_with_a_reason_the_model_reads() -> None:
    llm = ScriptedLLM([call_tools(("shell", {"cmd": "rm -rf /"})), answer("could not")])
    loop, _, tools, audit = make(llm, FakeTools({"shell": ToolOutcome(status="ok")}))
    state = await loop.run(new_state())
    assert tools.executions == []
    observed = llm.calls[1].messages[-1]
    assert observed.role == "tool"
    assert observed.content.startswith("BLOCKED by guard rule no-rm")
    assert state.status == "completed"
    assert ("guard.block", "shell") == audit.records[0][:2]


async def test_a_held_call_parks_and_runs_once_approved() -> None:
    llm = ScriptedLLM([call_tools(("pay", {"to": "acme", "amount": 5})), answer("paid")])
    tools = FakeTools({"pay": ToolOutcome(status="ok", output="done")})
    loop, sink, tools, _ = make(llm, tools)
    state = await loop.run(new_state())
    assert state.status == "waiting_for_approval"
    assert tools.executions == []
    assert sink.approvals[-1][1].tool_name == "pay"
    assert "guard:pay" in sink.approvals[-1][1].consequences

    state = await loop.decide(state, decision(state, "approved"))
    assert state.status == "completed"
    assert [e.approval_id for e in tools.executions] == [state.decided_approvals[0]]


async def test_consecutive_tool_errors_park_and_approval_continues() -> None:
    failing = ToolOutcome(status="error", error="boom")
    llm = ScriptedLLM(
        [
            call_tools(("calculator", {"e": "1"})),
            call_tools(("calculator", {"e": "2"})),
            answer("gave up on the calculator"),
        ]
    )
    loop, sink, _, _ = make(llm, FakeTools({"calculator": failing}))
    state = await loop.run(new_state())
    assert state.status == "waiting_for_approval"
    assert len(llm.calls) == 2
    assert sink.approvals[-1][1].tool_name == CONTINUE_SESSION
    assert "2 tool calls in a row failed" in sink.approvals[-1][1].reasoning

    state = await loop.decide(state, decision(state, "approved"))
    assert (state.status, state.answer) == ("completed", "gave up on the calculator")


async def test_without_guards_nothing_changes() -> None:
    sink = RecordingSink()
    tools = FakeTools({"shell": ToolOutcome(status="ok")})
    loop = AgentLoop(
        ScriptedLLM([call_tools(("shell", {"cmd": "rm -rf /"})), answer(f"key {KEY}")]),
        tools,
        FakeMemory(),
        sink,
        LoopConfig("system", memory_token_budget=300),
    )
    state = await loop.run(new_state())
    assert (state.status, state.answer) == ("completed", f"key {KEY}")
    assert len(tools.executions) == 1
    assert tools.list_calls == ["analyst", "analyst"]


async def test_the_reloader_swaps_valid_files_and_keeps_the_guards_on_a_bad_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "guards.yaml"
    path.write_text("rules: [{id: a, match: answer, regex: 'one', verdict: block}]\n")
    holder = load_holder(path)
    audit = RecordingAudit()
    reloader = GuardsReloader(path, holder, audit, interval_s=0)
    assert await reloader.check() == "unchanged"
    path.write_text("rules: [{id: b, match: answer, regex: 'two', verdict: block}]\n")
    assert await reloader.check() == "reloaded"
    assert holder.engine.check_answer("two").rule_id == "b"
    path.write_text("rules: [{id: c, match: answer, verdict: block}]\n")
    assert await reloader.check() == "failed"
    assert holder.engine.check_answer("two").rule_id == "b"
    assert [a for a, _, _ in audit.records] == ["guards.reloaded", "guards.reload_failed"]
