"""The tool gateway verifies an approval itself: the decision the approval service hands back
must carry that service's signature, be unexpired, and be bound to exactly this call. A book
fed from a topic anyone could write (or a replica that answers wrongly) cannot make it run."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel_contracts.approvals import decision_for, sign_event
from keel_contracts.canonical import canonical_json
from keel_contracts.events import ApprovalDecided, ApprovalRequested
from keel_core.trust import Signer
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.approval import VerifiedApprovals, check_approval
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import ApprovalView, RequestContext
from keel_tool_gateway.testing import CountingTool, StaticApprovals, StaticPolicy

SIGNER = Signer(Ed25519PrivateKey.generate())
ARGS = {"n": 5}


def ctx(session: str) -> RequestContext:
    return RequestContext(session_id=session, agent_id="a1", tenant="acme")


def decision(session: str = "s1", **changes: Any) -> ApprovalDecided:
    request = ApprovalRequested(
        approval_id=f"ap-{session}",
        agent_id="a1",
        tool_name="counter",
        arguments=ARGS,
        idempotency_key=f"{session}:2:0",
        tenant="acme",
    )
    expiry = datetime.now(UTC) + timedelta(hours=1)
    return decision_for(request, session, "approved", "ann", expiry).model_copy(update=changes)


def view(signed: ApprovalDecided | None, **changes: Any) -> ApprovalView:
    """What the approval service's Get answers: the book's fields and the signed decision."""
    base = signed or decision()
    fields: dict[str, Any] = {
        "id": base.approval_id,
        "status": "approved",
        "session_id": base.session_id,
        "tool_name": base.tool_name,
        "idempotency_key": base.idempotency_key,
        "arguments_json": canonical_json(ARGS),
        "decision_json": signed.model_dump_json() if signed else "",
    }
    fields.update(changes)
    return ApprovalView(**fields)


async def run(record: ApprovalView, session: str = "s1") -> tuple[Any, int, list[tuple[str, str]]]:
    counter = CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    denied: list[tuple[str, str]] = []

    async def on_denied(approval_id: str, reason: str) -> None:
        denied.append((approval_id, reason))

    approvals = VerifiedApprovals(StaticApprovals([record]), SIGNER.public, denied=on_denied)
    service = ExecutionService(
        registry, StaticPolicy("require_approval"), ResultLedger(), approvals=approvals
    )
    result = await service.execute(
        ctx(session), "counter", canonical_json(ARGS), f"{session}:2:0", approval_id=record.id
    )
    return result, counter.runs, denied


async def test_a_signed_approval_for_this_call_runs() -> None:
    result, runs, denied = await run(view(sign_event(decision(), SIGNER)))
    assert (result.status, result.approval_outcome, runs, denied) == ("ok", "approved", 1, [])


FORGED = {
    "unsigned": lambda: view(None),
    "unsigned decision": lambda: view(decision()),
    "badly signed": lambda: view(sign_event(decision(), Signer(Ed25519PrivateKey.generate()))),
    "signed then modified": lambda: view(
        sign_event(decision(), SIGNER).model_copy(
            update={"outcome": "modified", "modified_arguments": {"n": 500}}
        ),
        status="modified",
        modified_arguments_json='{"n":500}',
    ),
    "expired": lambda: view(
        sign_event(
            decision(expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat()), SIGNER
        )
    ),
    "other arguments": lambda: view(sign_event(decision(arguments_hash="0" * 64), SIGNER)),
}


@pytest.mark.parametrize("forgery", sorted(FORGED))
async def test_an_approval_without_a_valid_signature_runs_nothing(forgery: str) -> None:
    record = FORGED[forgery]()
    result, runs, denied = await run(record)
    assert (result.status, result.approval_outcome, runs) == ("denied", "invalid", 0)
    assert "nothing ran" in (result.error or "")
    assert [approval_id for approval_id, _ in denied] == [record.id]
    assert denied[0][1]


async def test_a_replayed_decision_of_another_session_runs_nothing() -> None:
    """Session A's valid decision, served (by a replica whose book was tampered with) as the
    approval of session B's call: the fields come from the signed decision, which names A."""
    stolen = sign_event(decision("session-a"), SIGNER)
    record = view(stolen, session_id="session-b", idempotency_key="session-b:2:0")
    result, runs, _ = await run(record, session="session-b")
    assert (result.status, result.approval_outcome, runs) == ("denied", "mismatch", 0)
    assert result.error == (
        "approval 'ap-session-a' was given for session 'session-a', not 'session-b'; nothing ran"
    )


async def test_session_and_tenant_are_checked_when_the_caller_names_them() -> None:
    stolen = sign_event(decision("session-a"), SIGNER)
    approvals = StaticApprovals([view(stolen)])
    for names in ({"session_id": "session-b"}, {"tenant": "other"}):
        check = await check_approval(
            approvals, stolen.approval_id, "counter", "session-a:2:0", ARGS, **names
        )
        assert check.outcome == "mismatch"
        assert check.refusal is not None
