"""The state of a session and the values that cross the loop's ports, as pydantic models.

``AgentState`` holds everything needed to continue a session, so a later checkpoint is just
its JSON and a resume is ``AgentLoop.run`` on the restored state.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from keel_agent_loop.domain.state_machine import TERMINAL, transition
from keel_agent_loop.domain.state_machine import SessionStatus as SessionStatus

# Shared with the other services; re-exported so the domain has one import site.
from keel_contracts.chat import ChatMessage as ChatMessage
from keel_contracts.chat import LLMReply as LLMReply
from keel_contracts.chat import RequestContext as RequestContext
from keel_contracts.chat import Role as Role
from keel_contracts.chat import ToolCall as ToolCall
from keel_contracts.chat import ToolSpec as ToolSpec
from keel_contracts.chat import Usage as Usage
from keel_contracts.events import Envelope, TaskCompleted, TaskFailed
from keel_contracts.tools import ToolOutcome as ToolOutcome
from keel_contracts.tools import ToolStatus as ToolStatus

FailureReason = Literal["iteration_limit", "error", "cancelled", "budget", "infrastructure"]
# The same kinds as ``keel_contracts.events.TaskProgress.kind``.
ProgressKind = Literal[
    "started",
    "thought",
    "tool_call",
    "tool_result",
    "approval_requested",
    "completed",
    "failed",
    "state",
    "resumed",
    "approval_decided",
    "history_trimmed",
    "cancelled",
]


class PendingApproval(BaseModel):
    """The tool call a parked session waits on: enough to run it once the decision arrives
    (same idempotency key) and to ask again if the request was lost."""

    model_config = ConfigDict(frozen=True)

    approval_id: str
    idempotency_key: str
    index: int
    call: ToolCall
    reasoning: str = ""
    # Wall-clock seconds when the session parked: the start of its "approval wait" span.
    requested_at: float = Field(default_factory=time.time)


class PendingPlan(BaseModel):
    """The ``plan`` call a session parked in plan mode waits on (``domain.plan_mode``)."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    index: int
    call: ToolCall


class Stall(BaseModel):
    """A session waiting out an outage of a service it needs: at which step, since when (wall
    clock, kept in the checkpoint so a restart does not reset the operator's limit)."""

    model_config = ConfigDict(frozen=True)

    step: str
    since: float
    error: str = ""


class AgentState(BaseModel):
    """One session. Mutated by the loop only; everything else reads it. Its JSON is the
    checkpoint, so every field needed to continue a session lives here."""

    session_id: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    agent_id: str = "agent"
    agent_profile: str = "default"
    tenant: str = "default"
    trace: str = ""
    messages: list[ChatMessage] = Field(default_factory=list)
    iteration: int = 0
    max_iterations: int = Field(default=8, ge=1)
    status: SessionStatus = "idle"
    answer: str = ""
    error: str = ""
    failure_reason: FailureReason | None = None
    usage: Usage = Field(default_factory=Usage)
    # None: no limit (the task handler fills in the configured defaults).
    token_budget: int | None = Field(default=None, ge=1)
    cost_budget_usd: float | None = Field(default=None, ge=0)
    metadata: dict[str, str] = Field(default_factory=dict)
    pending_approval: PendingApproval | None = None
    pending_plan: PendingPlan | None = None
    # Approvals already applied: a redelivered decision for one of them drives the session on.
    decided_approvals: list[str] = Field(default_factory=list)
    tools_used: list[str] = Field(default_factory=list)
    # Set while the session waits for an unreachable service (``usecases.run_session``).
    stalled: Stall | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def move(self, to: SessionStatus) -> SessionStatus:
        """Change status through the state machine; returns the previous status."""
        previous = self.status
        self.status = transition(previous, to)
        return previous

    def step_id(self) -> str:
        """Where the session stands: it changes with every step taken."""
        return f"{self.iteration}:{len(self.messages)}:{self.status}"

    def context(self) -> RequestContext:
        return RequestContext(
            session_id=self.session_id,
            agent_id=self.agent_id,
            tenant=self.tenant,
            agent_profile=self.agent_profile,
            traceparent=self.trace,
        )

    def complete(self, answer: str) -> SessionStatus:
        previous = self.move("completed")
        self.answer = answer
        return previous

    def fail(self, reason: FailureReason, error: str) -> SessionStatus:
        previous = self.move("cancelled" if reason == "cancelled" else "failed")
        self.failure_reason = reason
        self.error = error
        self.pending_approval = None
        self.pending_plan = None
        return previous


class FinishedSession(BaseModel):
    """A session's durable end, kept in place of its checkpoint (``SessionFinished`` on the
    compacted ``keel.checkpoints``): whoever receives the session's task, decision or cancel
    again — this process or a fresh one — finds it there and runs nothing.

    ``result`` is the envelope of the session's result as published to ``keel.results``: an
    interrupted finish is completed by publishing this same envelope (same id), never a new
    one. ``state`` (the terminal session, which the audit, the episodic memory and the finish
    hooks read) is kept until the finish is ``done``, then dropped to keep the marker small.
    """

    model_config = ConfigDict(frozen=True)

    result: Envelope
    state: AgentState | None = None
    done: bool = False

    @property
    def session_id(self) -> str:
        return self.result.session_id

    @property
    def finished_at(self) -> datetime:
        """When the result was made: the start of the marker's grace period."""
        return self.result.time

    def payload(self) -> TaskCompleted | TaskFailed:
        if self.result.type == TaskCompleted.event_type:
            return self.result.parse(TaskCompleted)
        return self.result.parse(TaskFailed)
