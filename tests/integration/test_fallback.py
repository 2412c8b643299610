"""Tool fallback on real processes: a tool whose breaker is open is answered by its declared
alternative, the model is told which tool answered, the audit log has ``tool.fallback`` and the
ledger records the tool that ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from keel_cli.ops_read import read_topic
from keel_contracts.events import Envelope, TaskCompleted, TaskProgress, ToolResultRecorded
from keel_contracts.topics import TOOL_RESULTS
from keel_core.settings import KafkaSettings
from keel_policy.config import DEFAULT_POLICY
from keel_tool_gateway.domain.registry import DEFAULT_PROFILE_TOOLS
from tests.integration.chaos import own_stack
from tests.integration.helpers import audit_of, run_task

pytestmark = pytest.mark.stack

CALLS = 7  # more than the breaker's threshold (5 failures in a row) of one attempt each
TOLD = "unreliable is unavailable (circuit open); answered by unreliable_mirror"


def policy_allowing_the_test_pair(directory: Path) -> Path:
    """The default policy plus an allow rule for ``unreliable*`` (a fallback is a call of its
    own, with its own decision). An own stack, since the session stack runs the default policy
    unchanged for every other test."""
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["rules"].append(
        {
            "id": "allow-unreliable-test-pair",
            "priority": 10,
            "tool": "unreliable*",
            "decision": "allow",
            "description": "the fallback test's tools",
        }
    )
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


async def test_an_open_breaker_is_answered_by_the_declared_alternative(tmp_path: Path) -> None:
    env = {
        "KEEL_POLICY_POLICY_FILE": str(policy_allowing_the_test_pair(tmp_path)),
        # Offered only here: in the default profile they would change the catalog every other
        # stack shows its model (the offline model's prompt included).
        "KEEL_TOOL_GATEWAY_PROFILES__PROFILES": json.dumps(
            {"default": [*DEFAULT_PROFILE_TOOLS, "unreliable", "unreliable_mirror"]}
        ),
    }
    async with own_stack(env) as (_stack, _counts, kafka):
        await check_fallback(kafka)


async def check_fallback(kafka: KafkaSettings) -> None:
    session_id, events = await run_task(
        kafka, f"Ask unreliable {CALLS} times: the weather", timeout_s=90, max_iterations=12
    )
    answer = events[-1].parse(TaskCompleted).answer
    # The model's last call was answered by the alternative, and it was told so.
    assert TOLD in answer
    assert "mirror answer to the weather" in answer
    results = [
        p.detail
        for e in events
        if e.type == TaskProgress.event_type and (p := e.parse(TaskProgress)).kind == "tool_result"
    ]
    assert len(results) == CALLS
    assert results[0]["status"] == "error"  # the backend is down before the breaker opens

    records = await audit_of(kafka, session_id, {"tool.fallback"})
    fallbacks = [r for r in records if r.action == "tool.fallback"]
    assert fallbacks
    assert {(r.details["from"], r.details["to"], r.details["decision"]) for r in fallbacks} == {
        ("unreliable", "unreliable_mirror", "allow")
    }
    keys = {r.details["idempotency_key"] for r in fallbacks}

    ledger = [
        Envelope.from_bytes(record.value or b"").parse(ToolResultRecorded)
        for record in await read_topic(kafka, TOOL_RESULTS)
        if record.key is not None and record.key.decode() in keys
    ]
    assert {(entry.tool, entry.status) for entry in ledger} == {("unreliable_mirror", "ok")}
    assert {entry.idempotency_key for entry in ledger} == keys
