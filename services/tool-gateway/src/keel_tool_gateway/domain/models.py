"""What the gateway reasons about: who asks, what policy said, and what came of a call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["allow", "deny", "require_approval"]
ExecutionStatus = Literal["ok", "error", "denied", "needs_approval"]
ApprovalStatus = Literal["pending", "approved", "rejected", "modified", "timed_out", "unknown"]
# How an approval id sent with a call was judged; "" when none was sent.
ApprovalOutcome = Literal[
    "",
    "approved",
    "modified",
    "not_found",
    "pending",
    "rejected",
    "timed_out",
    "unknown",
    "mismatch",
    "invalid",
    "unavailable",
]


class RequestContext(BaseModel):
    """The caller, carried to policy and audit unchanged."""

    model_config = ConfigDict(frozen=True)

    session_id: str = ""
    agent_id: str = ""
    tenant: str = ""
    agent_profile: str = ""
    traceparent: str = ""


class PolicyVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    rule_id: str
    reason: str = ""


class ExecutionResult(BaseModel):
    """The outcome of one Execute, as data for the model: a failed tool is a result, not a crash.

    ``untrusted`` is always true: ``output`` and ``error`` may carry text a tool (and through it
    a web page, a file, a person) chose, so the agent loop must present them to the model as
    data, never as instructions.
    """

    model_config = ConfigDict(frozen=True)

    status: ExecutionStatus
    output: str = ""
    error: str = ""
    rule_id: str = ""
    duration_ms: float = 0.0
    truncated: bool = False
    # True when the result came from the idempotency ledger and nothing was evaluated or run.
    replayed: bool = False
    untrusted: bool = True
    approval_outcome: ApprovalOutcome = ""


class ApprovalRecord(BaseModel):
    """An approval as the approval service reports it; the arguments are kept as the JSON text
    it sent, and compared canonically."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: ApprovalStatus
    tool_name: str = ""
    idempotency_key: str = ""
    arguments_json: str = ""
    modified_arguments_json: str = ""
    decided_by: str = ""
    comment: str = ""


# The memory service's kinds of entry, as the memory tools store and search them.
MemoryKind = Literal["episodic", "semantic", "procedural"]


class MemoryHit(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: MemoryKind
    content: str
    score: float = 0.0
    metadata: dict[str, str] = Field(default_factory=dict)
