"""Fakes of the agent loop's ports, for unit tests here and in other packages.

``ScriptedLLM`` plays back replies in order; ``FakeTools`` answers per tool and counts calls;
``FakeMemory`` returns fixed items or fails and keeps what is stored; ``RecordingSink`` keeps
every event in order; ``InMemoryCheckpoints`` is the checkpoint store without Kafka.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    FinishedSession,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    Usage,
)
from keel_agent_loop.domain.ports import MemoryType
from keel_contracts.canonical import sha256_hex
from keel_contracts.events import ApprovalRequested, TaskProgress
from keel_contracts.events.plans import Sampling


def answer(content: str, usage: Usage | None = None) -> LLMReply:
    """A reply with no tool calls: the model's final answer."""
    return LLMReply(message=ChatMessage(role="assistant", content=content), usage=usage or Usage())


def call_tools(
    *calls: tuple[str, dict[str, Any]], content: str = "", usage: Usage | None = None
) -> LLMReply:
    """A reply asking for ``(tool name, arguments)`` calls, with ids ``call_0``, ``call_1``..."""
    tool_calls = tuple(
        ToolCall(id=f"call_{i}", name=name, arguments_json=json.dumps(args))
        for i, (name, args) in enumerate(calls)
    )
    return LLMReply(
        message=ChatMessage(role="assistant", content=content, tool_calls=tool_calls),
        usage=usage or Usage(),
    )


@dataclass
class LLMCall:
    ctx: RequestContext
    messages: list[ChatMessage]
    tools: list[ToolSpec]
    sampling: Sampling | None = None


class ScriptedLLM:
    """Plays back ``replies`` in order; an exception in the list is raised instead. Running
    out of replies is a test bug and raises ``AssertionError``."""

    def __init__(self, replies: list[LLMReply | Exception]) -> None:
        self._replies = list(replies)
        self.calls: list[LLMCall] = []

    def extend(self, *replies: LLMReply | Exception) -> None:
        self._replies.extend(replies)

    async def complete(
        self,
        ctx: RequestContext,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        sampling: Sampling | None = None,
    ) -> LLMReply:
        self.calls.append(LLMCall(ctx, list(messages), list(tools), sampling))
        if not self._replies:
            raise AssertionError(f"ScriptedLLM ran out of replies after {len(self.calls)} calls")
        reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


@dataclass
class ToolExecution:
    ctx: RequestContext
    call: ToolCall
    idempotency_key: str
    approval_id: str = ""
    # The session's goal as sent for provenance checks.
    task_text: str = ""


class FakeTools:
    """Answers each tool with its outcome (or raises it, if an exception); a tool without one
    answers ``ok`` with output ``"<name> ok"``. A list of outcomes is played in order."""

    def __init__(
        self,
        outcomes: dict[str, ToolOutcome | BaseException | list[ToolOutcome | BaseException]]
        | None = None,
        specs: list[ToolSpec] | None = None,
    ) -> None:
        self._outcomes = dict(outcomes or {})
        self.specs = specs if specs is not None else [ToolSpec(name=n) for n in self._outcomes]
        self.executions: list[ToolExecution] = []
        # What a call carrying an approval id answers (the gateway ran the approved call).
        self.approved_outcomes: dict[str, ToolOutcome] = {}
        self.counts: Counter[str] = Counter()
        self.list_calls: list[str] = []

    async def list_tools(self, profile: str) -> list[ToolSpec]:
        self.list_calls.append(profile)
        return list(self.specs)

    async def execute(
        self,
        ctx: RequestContext,
        call: ToolCall,
        idempotency_key: str,
        approval_id: str = "",
        *,
        task_text: str = "",
    ) -> ToolOutcome:
        self.executions.append(ToolExecution(ctx, call, idempotency_key, approval_id, task_text))
        if approval_id and call.name in self.approved_outcomes:
            return self.approved_outcomes[call.name]
        self.counts[call.name] += 1
        outcome = self._outcomes.get(call.name, ToolOutcome(status="ok", output=f"{call.name} ok"))
        if isinstance(outcome, list):
            outcome = outcome.pop(0) if len(outcome) > 1 else outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@dataclass
class StoredMemory:
    ctx: RequestContext
    content: str
    memory_type: MemoryType
    metadata: dict[str, str]


@dataclass
class FakeMemory:
    items: list[str] = field(default_factory=list)
    error: Exception | None = None
    store_error: Exception | None = None
    queries: list[tuple[str, int]] = field(default_factory=list)
    stored: list[StoredMemory] = field(default_factory=list)

    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]:
        self.queries.append((query, budget))
        if self.error is not None:
            raise self.error
        return list(self.items)

    async def store(
        self, ctx: RequestContext, content: str, memory_type: MemoryType, metadata: dict[str, str]
    ) -> str:
        if self.store_error is not None:
            raise self.store_error
        self.stored.append(StoredMemory(ctx, content, memory_type, dict(metadata)))
        return sha256_hex(content)


class InMemoryCheckpoints:
    """The checkpoint store as JSON in a dict (a round trip like the real one's, so a state
    that does not survive serialisation fails here too); ``history`` keeps every write: a
    checkpoint as its status, an end marker as ``finished:<status>`` (``finished:done`` once
    its finish is complete), a delete as None."""

    def __init__(self) -> None:
        self._saved: dict[str, str] = {}
        self._finished: dict[str, str] = {}
        self.history: list[tuple[str, str | None]] = []

    def get(self, session_id: str) -> AgentState | None:
        raw = self._saved.get(session_id)
        return None if raw is None else AgentState.model_validate_json(raw)

    def finished(self, session_id: str) -> FinishedSession | None:
        raw = self._finished.get(session_id)
        return None if raw is None else FinishedSession.model_validate_json(raw)

    async def save(self, state: AgentState, durable: bool = True) -> None:
        self._finished.pop(state.session_id, None)
        self._saved[state.session_id] = state.model_dump_json()
        self.history.append((state.session_id, state.status))

    async def save_finished(self, finished: FinishedSession, durable: bool = True) -> None:
        self._saved.pop(finished.session_id, None)
        self._finished[finished.session_id] = finished.model_dump_json()
        what = "done" if finished.done else finished.state.status if finished.state else "?"
        self.history.append((finished.session_id, f"finished:{what}"))

    async def delete(self, session_id: str) -> None:
        self._saved.pop(session_id, None)
        self._finished.pop(session_id, None)
        self.history.append((session_id, None))

    def statuses(self, session_id: str) -> list[str | None]:
        return [status for sid, status in self.history if sid == session_id]


@dataclass
class RecordingSink:
    events: list[tuple[RequestContext, TaskProgress]] = field(default_factory=list)
    approvals: list[tuple[RequestContext, ApprovalRequested]] = field(default_factory=list)

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None:
        self.events.append((ctx, event))

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None:
        self.approvals.append((ctx, request))

    def kinds(self, include_state: bool = False) -> list[str]:
        """Kinds in order; ``state`` events only when asked (see ``states``)."""
        return [str(e.kind) for _, e in self.events if include_state or str(e.kind) != "state"]

    def states(self) -> list[tuple[str, str]]:
        """Every status change as (from, to), in order."""
        return [(e.detail["from"], e.detail["to"]) for e in self.of_kind("state")]

    def of_kind(self, kind: str) -> list[TaskProgress]:
        return [event for _, event in self.events if event.kind == kind]
