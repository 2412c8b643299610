"""Does an approval cover exactly this call? A call sent with an approval id runs only if the
approval service knows the id, a person approved (or modified) it, and it names this tool,
this idempotency key and these arguments (compared as canonical JSON). Anything else refuses
the call with a reason; nothing runs.

With the approval service's public key (``VerifiedApprovals``), what the service answers is
not taken on its word: its book is fed from a topic, so the decision it hands back must carry
the service's own signature, be unexpired, and every field checked here comes from that
signed decision (bound to the session, tenant, tool, key and argument hash it was made for).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from keel_contracts.approvals import SignatureVerifier, arguments_hash, signature_problem
from keel_contracts.canonical import canonical_json
from keel_contracts.events import ApprovalDecided
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


class ApprovalRefused(Exception):  # noqa: N818 - a refusal, not a failure of the lookup
    """The approval service answered with a decision that may not be acted on."""


Denied = Callable[[str, str], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


class VerifiedApprovals:
    """An ``ApprovalPort`` whose decided approvals are checked against the approval service's
    signature: the view it returns is the signed decision's (outcome, tool, key, session,
    modified arguments), refused (``ApprovalRefused``, and ``denied`` called with the reason)
    when unsigned, badly signed, expired, or when the view's arguments are not the ones the
    decision's hash binds."""

    def __init__(
        self,
        inner: ApprovalPort,
        verifier: SignatureVerifier,
        *,
        clock: Callable[[], datetime] = _now,
        denied: Denied | None = None,
    ) -> None:
        self._inner = inner
        self._verifier = verifier
        self._clock = clock
        self._denied = denied

    async def get(self, approval_id: str) -> ApprovalView | None:
        view = await self._inner.get(approval_id)
        if view is None or view.status not in ("approved", "modified"):
            return view
        try:
            return self._verified(view)
        except ApprovalRefused as exc:
            if self._denied is not None:
                await self._denied(approval_id, str(exc))
            raise

    def _verified(self, view: ApprovalView) -> ApprovalView:
        decision = signed_decision(view)
        if decision is None:
            raise ApprovalRefused("the approval service sent no signed decision")
        problem = signature_problem(decision, self._verifier, self._clock())
        if problem is not None:
            raise ApprovalRefused(problem)
        asked = _object(view.arguments_json)
        if decision.approval_id != view.id:
            raise ApprovalRefused(f"the signed decision is for approval {decision.approval_id!r}")
        if asked is None or arguments_hash(asked) != decision.arguments_hash:
            raise ApprovalRefused("the signed decision was given for other arguments")
        modified = decision.modified_arguments
        return view.model_copy(
            update={
                "status": decision.outcome,
                "session_id": decision.session_id,
                "agent_id": decision.agent_id,
                "tool_name": decision.tool_name,
                "idempotency_key": decision.idempotency_key,
                "decided_by": decision.reviewer,
                "modified_arguments_json": canonical_json(modified) if modified is not None else "",
            }
        )


def signed_decision(view: ApprovalView) -> ApprovalDecided | None:
    """The decision the view carries, or None when it carries none that parses."""
    if not view.decision_json.strip():
        return None
    try:
        return ApprovalDecided.model_validate_json(view.decision_json)
    except ValidationError:
        return None


async def check_approval(
    approvals: ApprovalPort,
    approval_id: str,
    tool_name: str,
    idempotency_key: str,
    arguments: dict[str, Any],
    *,
    session_id: str | None = None,
    tenant: str | None = None,
) -> ApprovalCheck:
    """``session_id`` and ``tenant``, when given, must be the ones the signed decision names
    (the key already embeds the session; these make the binding explicit)."""
    try:
        record = await approvals.get(approval_id)
    except ApprovalRefused as exc:
        return _refuse("invalid", "denied", f"approval {approval_id!r} refused: {exc}; nothing ran")
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
    decision = signed_decision(record)
    if decision is not None and session_id is not None and decision.session_id != session_id:
        return _mismatch(approval_id, f"session {decision.session_id!r}, not {session_id!r}")
    if decision is not None and tenant is not None and decision.tenant != tenant:
        return _mismatch(approval_id, f"tenant {decision.tenant!r}, not {tenant!r}")
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
