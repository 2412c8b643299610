"""Approvals as data: one request for a human decision on one tool call, and its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ApprovalStatus = Literal["pending", "approved", "rejected", "modified", "timed_out"]
Outcome = Literal["approve", "reject", "modify"]

STATUS_OF: dict[Outcome, ApprovalStatus] = {
    "approve": "approved",
    "reject": "rejected",
    "modify": "modified",
}


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    session_id: str
    agent_id: str
    tool_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""
    idempotency_key: str = ""
    status: ApprovalStatus = "pending"
    created_at: datetime
    # ISO 8601 as the requester sent it; "" when there is none.
    deadline: str = ""
    decided_by: str = ""
    decided_at: datetime | None = None
    comment: str = ""
    # Only for status "modified": the arguments the tool call must run with instead.
    modified_arguments: dict[str, Any] | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending"
