"""Does an approval cover exactly this call? A call sent with an approval id runs only if the
approval service knows the id, a person approved (or modified) it, and it names this tool,
this idempotency key and these arguments (compared as canonical JSON). Anything else refuses
the call with a reason; nothing runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from keel_contracts.canonical import canonical_json
from keel_tool_gateway.domain.models import (
    ApprovalOutcome,
    ApprovalView,
    ExecutionResult,
    ExecutionStatus,
)
from keel_tool_gateway.domain.ports import ApprovalPort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalCheck:
    outcome: ApprovalOutcome
    # The arguments the call runs with once verified: the reviewer's for "modified".
    arguments: dict[str, Any] | None = None
    # Set when the approval does not cover the call: what the caller gets, nothing runs.
    refusal: ExecutionResult | None = None


async def check_approval(
    approvals: ApprovalPort,
    approval_id: str,
    tool_name: str,
    idempotency_key: str,
    arguments: dict[str, Any],
) -> ApprovalCheck:
    try:
        record = await approvals.get(approval_id)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, nothing may run
        log.warning("approval %s could not be fetched, failing closed: %r", approval_id, exc)
        message = (
            f"approval service unavailable: approval {approval_id!r} could not be verified, "
            "the call did not run"
        )
        refusal = ExecutionResult(
            status="error",
            error=message,
            approval_outcome="unavailable",
            dependency_unavailable=True,
        )
        return ApprovalCheck("unavailable", refusal=refusal)
    if record is None:
        return _refuse("not_found", "denied", f"approval {approval_id!r} not found; nothing ran")
    return _judge(record, tool_name, idempotency_key, arguments)


def _judge(
    record: ApprovalView, tool_name: str, idempotency_key: str, arguments: dict[str, Any]
) -> ApprovalCheck:
    name = record.id
    if record.status not in ("approved", "modified"):
        who = f" by {record.decided_by}" if record.decided_by else ""
        who += f": {record.comment}" if record.comment else ""
        status = record.status.replace("_", " ")
        return _refuse(record.status, "denied", f"approval {name!r} is {status}{who}; nothing ran")
    if record.tool_name != tool_name:
        return _mismatch(name, f"tool {record.tool_name!r}, not {tool_name!r}")
    if record.idempotency_key != idempotency_key:
        return _mismatch(
            name, f"idempotency key {record.idempotency_key!r}, not {idempotency_key!r}"
        )
    approved = _object(record.arguments_json)
    if approved is None or canonical_json(approved) != canonical_json(arguments):
        return _mismatch(name, "other arguments")
    if record.status == "approved":
        return ApprovalCheck("approved", arguments=arguments)
    text = record.modified_arguments_json
    modified = _object(text) if text.strip() else None
    if modified is None:
        message = f"approval {name!r} is modified but its arguments are not a JSON object"
        return _refuse("invalid", "error", message + "; nothing ran")
    return ApprovalCheck("modified", arguments=modified)


def _object(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _mismatch(approval_id: str, what: str) -> ApprovalCheck:
    return _refuse(
        "mismatch", "denied", f"approval {approval_id!r} was given for {what}; nothing ran"
    )


def _refuse(outcome: ApprovalOutcome, status: ExecutionStatus, message: str) -> ApprovalCheck:
    result = ExecutionResult(status=status, error=message, approval_outcome=outcome)
    return ApprovalCheck(outcome, refusal=result)
