"""What the gateway reasons about: who asks, what policy said, and what came of a call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# What the gateway shares with its callers and the services it calls: one definition each.
from keel_contracts.approvals import ApprovalStatus as ApprovalStatus
from keel_contracts.approvals import ApprovalView as ApprovalView
from keel_contracts.chat import RequestContext as RequestContext
from keel_contracts.memory import MemoryHit as MemoryHit
from keel_contracts.memory import MemoryType as MemoryType
from keel_contracts.policy import Decision as Decision
from keel_contracts.policy import PolicyVerdict as PolicyVerdict

ExecutionStatus = Literal["ok", "error", "denied", "needs_approval"]
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
    # Nothing ran because a Keel service the decision needs (policy, approval) could not
    # answer: an outage for the caller to wait out, not a tool error for the model.
    dependency_unavailable: bool = False
