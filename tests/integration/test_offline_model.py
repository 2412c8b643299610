"""The real offline model (Qwen2.5-Coder 0.5B, GGUF on CPU) answering a tool-using task through
the whole platform: Kafka in, agent loop, LLM gateway with the local provider, tool gateway,
policy, audit, Kafka out. Nothing is scripted: the model picks the tool and writes its JSON.

The weights and llama-cpp-python come from ``make install`` (deploy/models/); without them this
test fails with the command to run, rather than skipping, so CI cannot pass without the model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.tasks import publish_task
from keel_contracts.events import TaskCompleted, TaskSubmitted
from tests.integration.chaos import Watcher, own_stack

pytestmark = pytest.mark.stack

MODEL = "qwen2.5-coder-0.5b"
MODELS_DIR = Path.home() / ".cache" / "keel" / "models"


def require_the_model() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: run `make install`")
    if not any(MODELS_DIR.glob("qwen2.5-coder-0.5b*.gguf")):
        pytest.fail(f"no {MODEL} weights in {MODELS_DIR}: run `make install`")


async def test_the_offline_model_solves_a_calculator_task_end_to_end() -> None:
    require_the_model()
    env = {
        "KEEL_LLM_GATEWAY_PROVIDER": "local",
        "KEEL_LLM_GATEWAY_LOCAL_MODEL": MODEL,
        "KEEL_LLM_GATEWAY_LOCAL_MODELS_DIR": str(MODELS_DIR),
    }
    async with own_stack(env) as (_stack, _counts, kafka):
        async with SessionFollower(kafka, start="end") as follower:
            session_id = await publish_task(
                kafka, TaskSubmitted(goal="What is (17 * 23) + 4?", max_iterations=4)
            )
            watcher = Watcher(follower, session_id)
            result = await watcher.finished(timeout_s=240)
            watcher.stop()
    done = result.parse(TaskCompleted)
    calls = watcher.progress("tool_call")
    assert calls, "the model answered without using a tool"
    assert calls[0].detail["tool"] == "calculator"
    results = watcher.progress("tool_result")
    assert results[0].detail["status"] == "ok"
    assert "395" in done.answer
