"""Approval requests as the approval service reports them to its callers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# "unknown": a status this client does not know; never an approval.
ApprovalStatus = Literal["pending", "approved", "rejected", "modified", "timed_out", "unknown"]
ReviewOutcome = Literal["approve", "reject", "modify"]


class ApprovalView(BaseModel):
    """Arguments stay the JSON text the service sent: whoever checks them compares them
    canonically."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: ApprovalStatus
    session_id: str = ""
    agent_id: str = ""
    tool_name: str = ""
    arguments_json: str = ""
    reasoning: str = ""
    consequences: str = ""
    idempotency_key: str = ""
    created_at: str = ""
    deadline: str = ""
    decided_by: str = ""
    comment: str = ""
    modified_arguments_json: str = ""
    required_approvals: int = 0
    approved_by: tuple[str, ...] = ()
