"""The operator's commands on the real broker and stack: audit verify, dead letters, approvals,
cancel and result, run as the `keel` command a person would type."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.ops_read import read_topic
from keel_cli.stack import LocalStack
from keel_cli.tasks import publish_task
from keel_contracts.events import TaskFailed, TaskSubmitted
from keel_contracts.topics import AUDIT, TopicSpec, dlq_of
from keel_core.bus import EventProducer
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings
from keel_core.testing import in_memory_audit
from keel_core.trust import TrustMaterial
from tests.integration.chaos import Watcher
from tests.integration.helpers import run_task


async def keel(
    kafka: KafkaSettings, *args: str, stack: LocalStack | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap}
    if stack is not None:
        env["KEEL_CLI_AGENT_TARGET"] = stack.target("agent-loop")
        env["KEEL_CLI_APPROVAL_TARGET"] = stack.target("approval")
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keel_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def one_partition_topics(kafka: KafkaSettings, *names: str) -> None:
    single = kafka.model_copy(update={"topic_partitions": 1})
    await ensure_topics(single, [TopicSpec(name) for name in names])


@pytest.mark.stack
async def test_audit_verify_finds_the_chains_of_a_real_run_intact(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    await run_task(kafka, "What is 3 * 4?")
    verified = await keel(kafka, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "hash chains intact" in verified.stdout
    assert "tool-gateway@" in verified.stdout
    assert "policy@" in verified.stdout


@pytest.mark.kafka
async def test_audit_verify_names_the_tampered_record(kafka: KafkaSettings) -> None:
    topic = f"test.audit.{uuid.uuid4().hex[:8]}"
    await one_partition_topics(kafka, topic)
    # Signed as the policy service would (verify checks signatures with the run's material).
    signer = TrustMaterial(Path(os.environ["KEEL_TRUST_DIR"])).audit_signer("policy")
    audit, published = in_memory_audit("policy", signer=signer, producer_id="policy@tamper")
    audit.start()
    for i in range(4):
        await audit.record("tool.execution", actor="agent", subject=f"call-{i}")
    await audit.close()
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        for i, sent in enumerate(r for r in published.sent if r.topic == AUDIT):
            value = sent.value or b""
            if i == 2:
                envelope = json.loads(value)
                envelope["data"]["subject"] = "something else"
                value = json.dumps(envelope).encode()
            await producer.send_raw(topic, value, sent.key, [])
    finally:
        await producer.stop()

    verified = await keel(kafka, "audit", "verify", "--topic", topic)
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert (
        "BROKEN at partition 0 offset 2: producer policy@tamper sequence 2: "
        "content does not match its hash (record edited)"
    ) in verified.stdout
    assert "policy@tamper                                   2 records" in verified.stdout


@pytest.mark.kafka
async def test_dead_letters_are_listed_shown_and_replayed_to_their_source(
    kafka: KafkaSettings,
) -> None:
    source = f"test.dlq-source.{uuid.uuid4().hex[:8]}"
    await one_partition_topics(kafka, source, dlq_of(source))
    headers = [
        ("keel-dlq-reason", b"undecodable envelope: Expecting property name"),
        ("keel-dlq-topic", source.encode()),
        ("keel-dlq-partition", b"0"),
        ("keel-dlq-offset", b"7"),
        ("traceparent", b"00-abc-def-01"),
    ]
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        await producer.send_raw(dlq_of(source), b"{not json", b"session-1", headers)
    finally:
        await producer.stop()

    listed = await keel(kafka, "dlq", "list", "--topic", dlq_of(source))
    assert listed.returncode == 0, listed.stderr
    assert "0:0 " in listed.stdout
    assert f"from {source}@0:7  key=session-1" in listed.stdout
    assert "1 dead letter(s)" in listed.stdout
    shown = await keel(kafka, "dlq", "show", "0:0", "--topic", dlq_of(source))
    assert "value: {not json" in shown.stdout
    assert "undecodable envelope" in shown.stdout
    missing = await keel(kafka, "dlq", "show", "0:5", "--topic", dlq_of(source))
    assert missing.returncode == 2
    assert "no dead letter" in missing.stderr

    replayed = await keel(kafka, "dlq", "replay", "0:0", "--topic", dlq_of(source))
    assert replayed.returncode == 0, replayed.stderr
    assert f"to {source} at offset 0" in replayed.stdout
    (back,) = await read_topic(kafka, source)
    assert (back.key, back.value) == (b"session-1", b"{not json")
    back_headers = dict(back.headers)
    assert back_headers["traceparent"] == b"00-abc-def-01"
    assert back_headers["keel-replayed-from"] == f"{dlq_of(source)}@0:0".encode()
    assert not any(k.startswith("keel-dlq-") for k in back_headers)


@pytest.mark.stack
async def test_a_reviewer_approves_from_the_command_line(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(
            kafka, TaskSubmitted(goal="Email bob@example.com: the release is out")
        )
        watcher = Watcher(follower, session_id)
        await watcher.until("approval_requested")
        approval_id = watcher.progress("approval_requested")[0].detail["approval_id"]
        async with asyncio.timeout(30):
            while True:
                listed = await keel(kafka, "approvals", "list", stack=stack)
                assert listed.returncode == 0, listed.stderr
                if approval_id in listed.stdout:
                    break
                await asyncio.sleep(0.3)
        line = next(x for x in listed.stdout.splitlines() if x.startswith(approval_id))
        assert f"pending   session={session_id} tool=send_email" in line
        approved = await keel(
            kafka,
            "approvals",
            "approve",
            approval_id,
            "--reviewer",
            "alice",
            "--comment",
            "ship it",
            "--token",
            "t0ken",
            stack=stack,
        )
        assert approved.returncode == 0, approved.stderr
        assert "approved  " in approved.stdout
        assert "by=alice comment='ship it'" in approved.stdout
        await watcher.finished()
        watcher.stop()
    again = await keel(kafka, "approvals", "reject", approval_id, "--reviewer", "bob", stack=stack)
    assert again.returncode == 2
    assert "keel: error:" in again.stderr
    everything = await keel(kafka, "approvals", "list", "--all", stack=stack)
    assert approval_id in everything.stdout
    result = await keel(kafka, "result", session_id, stack=stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("answer: ")


@pytest.mark.stack
async def test_cancel_stops_a_session_and_result_reports_it(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    name = f"cancel-{uuid.uuid4().hex[:8]}"
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(
            kafka, TaskSubmitted(goal=f"count 30 times slowly: {name}", max_iterations=40)
        )
        watcher = Watcher(follower, session_id)
        await watcher.until("tool_result")
        cancelled = await keel(kafka, "cancel", session_id, "--reason", "enough", stack=stack)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert f"cancel accepted: {session_id}" in cancelled.stdout
        final = await watcher.finished()
        watcher.stop()
    assert final.parse(TaskFailed).reason == "cancelled"
    result = await keel(kafka, "result", session_id, stack=stack)
    assert result.returncode == 1
    assert result.stdout.startswith("failed (cancelled): ")
    unknown = await keel(kafka, "result", uuid.uuid4().hex, stack=stack)
    assert unknown.returncode == 1
    assert "no result for session" in unknown.stderr
