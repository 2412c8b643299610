"""`keel replay` on a session run by the real stack: the scripted demo model solves
"What is (17 * 23) + 4?" with the calculator; replaying it from Kafka is identical, and a
changed system prompt diverges at step 1 with a diff of the system message."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack
from keel_cli.tasks import publish_task
from keel_contracts.events import Envelope, TaskCompleted, TaskSubmitted
from keel_core.settings import KafkaSettings

GOAL = "What is (17 * 23) + 4?"


async def run_task(kafka: KafkaSettings, goal: str) -> tuple[str, Envelope]:
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(kafka, TaskSubmitted(goal=goal))
        last: Envelope | None = None
        async with asyncio.timeout(60):
            async for envelope in follower.events(session_id):
                last = envelope
    assert last is not None
    return session_id, last


async def keel(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keel_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.stack
async def test_a_real_session_replays_identical_and_a_new_system_prompt_diverges_at_step_1(
    stack: LocalStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    session_id, result = await run_task(kafka, GOAL)
    assert result.type == TaskCompleted.event_type
    assert "395" in result.parse(TaskCompleted).answer

    same = await keel(kafka, "replay", session_id)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "replayed 2 steps, identical" in same.stdout

    prompt = tmp_path / "pirate.txt"
    prompt.write_text("You are a pirate. Answer every question in rhymes.", encoding="utf-8")
    changed = await keel(kafka, "replay", session_id, "--system-prompt-file", str(prompt))
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "diverged at step 1: the prompt differs from the recorded one" in changed.stdout
    assert "message 0 (system) differs:" in changed.stdout
    # The configured prompt is the one the session ran with, so the recorded text is shown.
    assert "-You are Keel, a careful and helpful agent." in changed.stdout
    assert "+You are a pirate. Answer every question in rhymes." in changed.stdout

    live = await keel(
        kafka,
        "replay",
        session_id,
        "--model",
        "scripted",
        "--llm-target",
        stack.target("llm-gateway"),
    )
    assert live.returncode == 0, live.stdout + live.stderr
    assert "replayed 2 steps, identical" in live.stdout
    assert "model scripted gave the recorded answer at every step" in live.stdout


@pytest.mark.kafka
async def test_replaying_an_unknown_session_says_why_it_cannot(kafka: KafkaSettings) -> None:
    missing = await keel(kafka, "replay", "no-such-session")
    assert missing.returncode == 2
    assert "cannot replay no-such-session: no events of session" in missing.stderr
