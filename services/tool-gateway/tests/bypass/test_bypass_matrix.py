"""No code path runs a tool without an ALLOW decision or a verified approval.

Every combination (not a sample) of what policy says, what approval is sent, what the ledger
holds, what the arguments look like and which tool is named, against one oracle: the counting
tool ran iff nothing was stored for the key, the tool exists, its arguments are valid, any
approval sent was verified, and policy said ALLOW, or REQUIRE_APPROVAL with a verified
approval. DENY never runs.
"""

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_contracts.errors import Unavailable
from keel_tool_gateway.adapters.resilience.runner import Resilience
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import LedgerEntry
from keel_tool_gateway.domain.models import (
    ApprovalStatus,
    ApprovalView,
    ExecutionResult,
    PolicyVerdict,
    RequestContext,
)
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.testing import CountingTool, FlakyLedger, StaticApprovals
from keel_tool_gateway.testing.resilience import FakeTime

CTX = RequestContext(session_id="s1", agent_id="a1", agent_profile="default")
KEY = "s1:3:0"
APPROVAL_ID = "ap-1"

DECISIONS = ["allow", "deny", "require_approval", "unavailable", "garbage", "raises"]
APPROVALS = [
    "absent",
    "approved",
    "modified",
    "modified_invalid",
    "pending",
    "rejected",
    "timed_out",
    "other_tool",
    "other_key",
    "other_args",
    "not_found",
    "service_down",
]
LEDGER = ["miss", "hit_same_call", "hit_other_call"]
ARGUMENTS = ["valid", "invalid_for_model", "malformed_json", "not_an_object", "empty"]
TOOLS = ["counter", "unknown"]

ARGUMENT_TEXT = {
    "valid": '{"n": 3}',
    "invalid_for_model": '{"n": "three"}',
    "malformed_json": '{"n": 3',
    "not_an_object": "[3]",
    "empty": "",
}


class ScriptedPolicy:
    """Answers one way, including the ways a broken policy port might."""

    def __init__(self, decision: str) -> None:
        self.decision = decision
        self.calls = 0

    async def evaluate(
        self,
        ctx: RequestContext,
        tool: str,
        arguments: dict[str, Any],
        *,
        idempotency_key: str = "",
        approved: bool = False,
    ) -> PolicyVerdict:
        self.calls += 1
        if self.decision == "unavailable":
            raise Unavailable("policy is down")
        if self.decision == "raises":
            raise RuntimeError("bug in the policy client")
        if self.decision == "garbage":
            # Built without validation, as a buggy adapter could: not a decision at all.
            return PolicyVerdict.model_construct(decision="ALLOW!", rule_id="r", reason="")
        return PolicyVerdict.model_validate(
            {"decision": self.decision, "rule_id": "r-1", "reason": "scripted"}
        )


def approval_for(kind: str, tool: str, arguments_text: str) -> ApprovalView | None:
    if kind in ("absent", "not_found", "service_down"):
        return None
    status: ApprovalStatus = "approved"
    fields: dict[str, Any] = {}
    if kind in ("pending", "rejected", "timed_out"):
        status = kind  # type: ignore[assignment]
    elif kind == "modified":
        status, fields = "modified", {"modified_arguments_json": '{"n": 7}'}
    elif kind == "modified_invalid":
        status, fields = "modified", {"modified_arguments_json": "[1]"}
    return ApprovalView(
        id=APPROVAL_ID,
        status=status,
        tool_name="other" if kind == "other_tool" else tool,
        idempotency_key="other-key" if kind == "other_key" else KEY,
        arguments_json='{"n": 99}' if kind == "other_args" else arguments_text,
        **fields,
    )


@dataclass(frozen=True)
class Case:
    decision: str
    approval: str
    ledger: str
    arguments: str
    tool: str

    def should_run(self) -> bool:
        verified = self.approval in ("approved", "modified")
        # A reviewer's modified arguments replace the caller's, so they may fix invalid ones.
        arguments_ok = self.arguments in ("valid", "empty") or (
            self.arguments == "invalid_for_model" and self.approval == "modified"
        )
        decided = self.decision == "allow" or (self.decision == "require_approval" and verified)
        return (
            self.ledger == "miss"
            and self.tool == "counter"
            and arguments_ok
            and self.approval in ("absent", "approved", "modified")
            and decided
        )


CASES = [
    Case(*combo) for combo in itertools.product(DECISIONS, APPROVALS, LEDGER, ARGUMENTS, TOOLS)
]


async def run_case(case: Case) -> tuple[CountingTool, ExecutionResult, ScriptedPolicy]:
    counter = CountingTool()
    registry = ToolRegistry()
    registry.register(counter.tool)
    text = ARGUMENT_TEXT[case.arguments]
    record = approval_for(case.approval, case.tool, text)
    approvals = StaticApprovals(
        [record] if record else [],
        error=Unavailable("approval down") if case.approval == "service_down" else None,
    )
    ledger = FlakyLedger()
    if case.ledger != "miss":
        other = case.ledger == "hit_other_call"
        stored = ExecutionResult(status="ok", output="stored")
        fingerprint = _fingerprint(case.tool, text, other=other)
        await ledger.put(KEY, LedgerEntry(fingerprint, case.tool, stored))
    policy = ScriptedPolicy(case.decision)
    time = FakeTime()
    resilience = Resilience(
        ResilienceSettings(), clock=time.clock, wall_clock=time.clock, sleep=time.sleep
    )
    service = ExecutionService(registry, policy, ledger, approvals=approvals, resilience=resilience)
    approval_id = "" if case.approval == "absent" else APPROVAL_ID
    result = await service.execute(CTX, case.tool, text, KEY, approval_id=approval_id)
    return counter, result, policy


def _fingerprint(tool: str, text: str, *, other: bool) -> str:
    if other:
        return sha256_hex(canonical_json({"tool": tool, "arguments": {"n": 12345}}))
    try:
        arguments: Any = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        arguments = text
    if not isinstance(arguments, dict):
        arguments = text
    return sha256_hex(canonical_json({"tool": tool, "arguments": arguments}))


def test_the_matrix_is_complete() -> None:
    assert len(CASES) == 6 * 12 * 3 * 5 * 2
    assert any(case.should_run() for case in CASES)
    assert sum(case.should_run() for case in CASES) < len(CASES) / 20


async def test_a_tool_runs_only_when_allowed_or_approved() -> None:
    wrong: list[str] = []
    for case in CASES:
        counter, result, policy = await run_case(case)
        expected = case.should_run()
        if (counter.runs == 1) != expected or counter.runs > 1:
            wrong.append(f"{case}: ran {counter.runs}x, status {result.status} {result.error}")
            continue
        if expected and result.status != "ok":
            wrong.append(f"{case}: ran but status {result.status}")
        if not expected and result.status == "ok" and not result.replayed:
            wrong.append(f"{case}: did not run but reported ok")
        if case.ledger != "miss" and policy.calls:
            wrong.append(f"{case}: a ledger hit asked policy")
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("approval", APPROVALS)
async def test_deny_never_runs_whatever_the_approval(approval: str) -> None:
    for arguments, tool in itertools.product(ARGUMENTS, TOOLS):
        counter, result, _ = await run_case(Case("deny", approval, "miss", arguments, tool))
        assert counter.runs == 0
        assert result.status != "ok"
