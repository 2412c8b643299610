"""A call sent with an approval id runs only when the approval covers exactly that call."""

from typing import Any

import pytest

from keel_contracts.errors import Unavailable
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import ApprovalView, Decision, RequestContext
from keel_tool_gateway.testing import CountingTool, StaticApprovals, StaticPolicy

CTX = RequestContext(session_id="s1", agent_id="a1")
KEY = "s1:2:0"
ARGS = '{"n": 5}'


def approval(**changes: Any) -> ApprovalView:
    fields: dict[str, Any] = {
        "id": "ap-1",
        "status": "approved",
        "tool_name": "counter",
        "idempotency_key": KEY,
        "arguments_json": '{"n":5}',
    }
    fields.update(changes)
    return ApprovalView(**fields)


def make(
    record: ApprovalView | None = None,
    decision: Decision = "require_approval",
    error: Exception | None = None,
) -> tuple[ExecutionService, CountingTool, StaticPolicy, StaticApprovals]:
    counter = CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    policy = StaticPolicy(decision)
    approvals = StaticApprovals([record] if record else [], error=error)
    service = ExecutionService(registry, policy, ResultLedger(), approvals=approvals)
    return service, counter, policy, approvals


@pytest.mark.parametrize("decision", ["require_approval", "allow"])
async def test_an_approved_call_runs(decision: Decision) -> None:
    service, counter, policy, approvals = make(approval(), decision)
    result = await service.execute(CTX, "counter", ARGS, KEY, approval_id="ap-1")
    assert (result.status, result.approval_outcome) == ("ok", "approved")
    assert result.rule_id == f"static-{decision}"
    assert counter.runs == 1
    assert counter.seen[0].n == 5
    assert approvals.asked == ["ap-1"]
    assert policy.calls[0].arguments == {"n": 5}
    # Policy hears that a person approved this very call: its running totals count it now.
    assert policy.calls[0].approved


async def test_arguments_are_compared_as_canonical_json() -> None:
    record = approval(arguments_json='{ "n" : 5 }')
    service, counter, _, _ = make(record)
    assert (await service.execute(CTX, "counter", '{"n":5}', KEY, "ap-1")).status == "ok"


async def test_a_modified_call_runs_with_the_reviewers_arguments() -> None:
    record = approval(status="modified", modified_arguments_json='{"n": 9}')
    service, counter, policy, _ = make(record)
    result = await service.execute(CTX, "counter", ARGS, KEY, approval_id="ap-1")
    assert (result.status, result.approval_outcome) == ("ok", "modified")
    assert counter.seen[0].n == 9
    # Policy judges what actually runs.
    assert policy.calls[0].arguments == {"n": 9}


async def test_modified_arguments_are_validated_like_any_call() -> None:
    record = approval(status="modified", modified_arguments_json='{"n": -1}')
    service, counter, _, _ = make(record)
    result = await service.execute(CTX, "counter", ARGS, KEY, approval_id="ap-1")
    assert result.status == "error"
    assert result.error.startswith("invalid arguments for counter: n: Input should be greater")
    assert counter.runs == 0


async def test_deny_still_wins_over_an_approval() -> None:
    service, counter, _, _ = make(approval(), "deny")
    result = await service.execute(CTX, "counter", ARGS, KEY, approval_id="ap-1")
    assert (result.status, result.approval_outcome) == ("denied", "approved")
    assert result.error == "denied by policy rule static-deny: static deny"
    assert counter.runs == 0


@pytest.mark.parametrize(
    ("record", "status", "outcome", "error"),
    [
        (None, "denied", "not_found", "approval 'ap-1' not found; nothing ran"),
        (
            approval(status="pending"),
            "denied",
            "pending",
            "approval 'ap-1' is pending; nothing ran",
        ),
        (
            approval(status="rejected", decided_by="bob", comment="never"),
            "denied",
            "rejected",
            "approval 'ap-1' is rejected by bob: never; nothing ran",
        ),
        (
            approval(status="timed_out"),
            "denied",
            "timed_out",
            "approval 'ap-1' is timed out; nothing ran",
        ),
        (
            approval(status="unknown"),
            "denied",
            "unknown",
            "approval 'ap-1' is unknown; nothing ran",
        ),
        (
            approval(tool_name="send_email"),
            "denied",
            "mismatch",
            "approval 'ap-1' was given for tool 'send_email', not 'counter'; nothing ran",
        ),
        (
            approval(idempotency_key="s1:1:0"),
            "denied",
            "mismatch",
            "approval 'ap-1' was given for idempotency key 's1:1:0', not 's1:2:0'; nothing ran",
        ),
        (
            approval(arguments_json='{"n": 6}'),
            "denied",
            "mismatch",
            "approval 'ap-1' was given for other arguments; nothing ran",
        ),
        (
            approval(arguments_json="not json"),
            "denied",
            "mismatch",
            "approval 'ap-1' was given for other arguments; nothing ran",
        ),
        (
            approval(status="modified", modified_arguments_json="[1]"),
            "error",
            "invalid",
            "approval 'ap-1' is modified but its arguments are not a JSON object; nothing ran",
        ),
        (
            approval(status="modified"),
            "error",
            "invalid",
            "approval 'ap-1' is modified but its arguments are not a JSON object; nothing ran",
        ),
    ],
)
async def test_anything_but_an_exact_approval_runs_nothing(
    record: ApprovalView | None, status: str, outcome: str, error: str
) -> None:
    service, counter, policy, _ = make(record, "allow")
    result = await service.execute(CTX, "counter", ARGS, KEY, approval_id="ap-1")
    assert (result.status, result.approval_outcome, result.error) == (status, outcome, error)
    assert counter.runs == 0
    assert policy.calls == []


async def test_approval_service_down_fails_closed() -> None:
    service, counter, _, _ = make(approval(), error=Unavailable("UNAVAILABLE: refused"))
    result = await service.execute(CTX, "counter", ARGS, KEY, approval_id="ap-1")
    assert result.status == "error"
    assert result.error == (
        "approval service unavailable: approval 'ap-1' could not be verified, the call did not run"
    )
    assert result.approval_outcome == "unavailable"
    assert counter.runs == 0


async def test_a_refusal_is_not_remembered_so_a_later_decision_counts() -> None:
    record = approval(status="pending")
    service, counter, _, approvals = make(record)
    assert (await service.execute(CTX, "counter", ARGS, KEY, "ap-1")).status == "denied"
    approvals.approvals["ap-1"] = approval()
    result = await service.execute(CTX, "counter", ARGS, KEY, "ap-1")
    assert (result.status, result.replayed, counter.runs) == ("ok", False, 1)
    # Now it is remembered: a replay does not ask the approval service again.
    replay = await service.execute(CTX, "counter", ARGS, KEY, "ap-1")
    assert (replay.replayed, counter.runs, len(approvals.asked)) == (True, 1, 2)


async def test_without_an_approval_id_require_approval_still_needs_one() -> None:
    service, counter, policy, approvals = make(approval())
    result = await service.execute(CTX, "counter", ARGS, KEY)
    assert result.status == "needs_approval"
    assert (counter.runs, approvals.asked) == (0, [])
    assert not policy.calls[0].approved  # waiting for a person: it counts for nothing yet
