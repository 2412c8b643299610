"""One task end to end through the six services on the real broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from keel_cli.audit_tail import read_audit
from keel_cli.stack import LocalStack
from keel_contracts.events import TaskCompleted, TaskProgress
from keel_core.audit import verify_chain
from keel_core.settings import KafkaSettings
from tests.integration.helpers import audit_of, run_task

pytestmark = pytest.mark.stack


async def test_a_task_comes_back_on_results_with_its_audit_trail(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    session_id, events = await run_task(kafka, "What is (17 * 23) + 4?")

    result = events[-1]
    assert result.type == TaskCompleted.event_type
    done = result.parse(TaskCompleted)
    assert "395" in done.answer
    assert done.iterations == 2
    progress = [e.parse(TaskProgress) for e in events if e.type == TaskProgress.event_type]
    kinds = [p.kind for p in progress if p.kind != "state"]
    assert kinds[0] == "started"
    states = [(p.detail["from"], p.detail["to"]) for p in progress if p.kind == "state"]
    assert states[-1][1] == "completed"
    assert "tool_call" in kinds
    assert "tool_result" in kinds

    records = await audit_of(
        kafka,
        session_id,
        {"task.started", "llm.completion", "policy.decision", "tool.execution", "task.completed"},
    )
    decision = next(r for r in records if r.action == "policy.decision")
    assert decision.details["decision"] == "allow"
    execution = next(r for r in records if r.action == "tool.execution")
    assert execution.subject == "calculator"
    assert execution.details["status"] == "ok"
    assert verify_chain([rec for _, rec in await read_audit(kafka)]) is None


async def test_a_policy_denial_reaches_the_loop_as_a_tool_error(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    session_id, events = await run_task(kafka, "Compute 2 ** 99999")

    done = events[-1].parse(TaskCompleted)
    assert "DENIED" in done.answer
    results = [
        e.parse(TaskProgress)
        for e in events
        if e.type == TaskProgress.event_type and e.parse(TaskProgress).kind == "tool_result"
    ]
    assert results
    assert results[0].detail["status"] == "denied"
    records = await audit_of(kafka, session_id, {"policy.decision", "tool.execution"})
    decision = next(r for r in records if r.action == "policy.decision")
    assert (decision.details["decision"], decision.details["rule"]) == (
        "deny",
        "deny-huge-powers",
    )
    execution = next(r for r in records if r.action == "tool.execution")
    assert execution.details["status"] == "denied"


async def test_keel_audit_tail_verifies_the_chains(stack: LocalStack, kafka: KafkaSettings) -> None:
    await run_task(kafka, "What is 1 + 1?")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keel_cli", "audit", "tail", "-n", "5"],
        env={**os.environ, "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 6
    assert lines[-1].endswith("hash chains intact")
