"""Approvals as data: one request for a human decision on one tool call, and its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.events import ApprovalDecided

ApprovalStatus = Literal["pending", "approved", "rejected", "modified", "timed_out"]
Outcome = Literal["approve", "reject", "modify", "time_out"]

STATUS_OF: dict[Outcome, ApprovalStatus] = {
    "approve": "approved",
    "reject": "rejected",
    "modify": "modified",
    "time_out": "timed_out",
}

# Who decides a request nobody answered in time.
TIMEOUT_REVIEWER = "keel-approval"


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    session_id: str
    agent_id: str
    tool_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""
    # What running the call would do, in the requester's words (shown to reviewers).
    consequences: str = ""
    idempotency_key: str = ""
    status: ApprovalStatus = "pending"
    created_at: datetime
    # ISO 8601 as the requester sent it; "" when there is none.
    deadline: str = ""
    # When the request times out: the deadline, or arrival plus the default time-out.
    expires_at: datetime | None = None
    # N-of-M quorum: distinct approvals needed, and the reviewers who approved so far.
    required_approvals: int = Field(default=1, ge=1)
    approved_by: tuple[str, ...] = ()
    decided_by: str = ""
    decided_at: datetime | None = None
    comment: str = ""
    # Only for status "modified": the arguments the tool call must run with instead.
    modified_arguments: dict[str, Any] | None = None
    # The JSON schema modified arguments must meet ({} = unknown, not checked here).
    arguments_schema: dict[str, Any] = Field(default_factory=dict)
    # The requesting session's traceparent: its decision continues the same trace.
    trace: str = ""
    # The requesting session's tenant ("" from requesters that predate it).
    tenant: str = ""
    # The signed ApprovalDecided (JSON) once decided: what Get hands the tool gateway to
    # verify; "" while pending or when nothing is signed (insecure dev mode).
    decision_json: str = ""

    @property
    def pending(self) -> bool:
        return self.status == "pending"


class Decision(BaseModel):
    """A decision as published on the decisions topic, read back to rebuild the book."""

    model_config = ConfigDict(frozen=True)

    approval_id: str
    status: ApprovalStatus
    reviewer: str
    comment: str = ""
    modified_arguments: dict[str, Any] | None = None
    decided_at: datetime | None = None
    # The event as read from the topic: the book checks it against the request it settles
    # (binding, reviewer, quorum, schema) before applying it. None: nothing to check.
    event: ApprovalDecided | None = None


class Vote(BaseModel):
    """A quorum vote as published on the decisions topic, read back to rebuild the book."""

    model_config = ConfigDict(frozen=True)

    approval_id: str
    # Every reviewer who had approved when this vote was cast, in order.
    approvals: tuple[str, ...]
    # The session the (signed) vote names; "" when not known (unchecked).
    session_id: str = ""
