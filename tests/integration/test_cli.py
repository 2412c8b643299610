"""The user's way in: `keel submit` over Kafka and over gRPC, then `keel watch`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from keel_cli.stack import LocalStack
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.stack


async def keel(
    stack: LocalStack, kafka: KafkaSettings, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "KEEL_CLI_AGENT_TARGET": stack.target("agent-loop"),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keel_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("via", ["kafka", "grpc"])
async def test_submit_follows_the_task_to_its_answer(
    stack: LocalStack, kafka: KafkaSettings, via: str
) -> None:
    done = await keel(stack, kafka, "submit", "--via", via, "What is 6 * 7?")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "← calculator ok: 42" in done.stdout
    assert done.stdout.rstrip().endswith("answer: The answer is 42.")


async def test_watch_replays_a_finished_session(stack: LocalStack, kafka: KafkaSettings) -> None:
    submitted = await keel(stack, kafka, "submit", "--no-wait", "What is 5 + 5?")
    session_id = submitted.stdout.strip()
    watched = await keel(stack, kafka, "watch", session_id, "--timeout", "60")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "[0] started: 'What is 5 + 5?'" in watched.stdout
    assert watched.stdout.rstrip().endswith("answer: The answer is 10.")
