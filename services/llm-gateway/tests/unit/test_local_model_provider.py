"""LocalModelProvider with a fake engine: parsing, retry, usage, streaming, queueing, cancel."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from keel_contracts.errors import FailedPrecondition
from keel_llm_gateway.adapters.local_model import LocalModelProvider, _StreamGate
from keel_llm_gateway.adapters.local_model_engine import Generation
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    TextDelta,
    ToolSpec,
)

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluates an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
)


class FakeEngine:
    """Replies from a list, in pieces of ``chunk`` characters; counts one token per piece."""

    def __init__(self, replies: list[str], *, chunk: int = 3, delay_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.chunk = chunk
        self.delay_s = delay_s
        self.active = 0
        self.most_active = 0
        self.cancelled = threading.Event()
        self.closed = False
        self.stop_rules: list[Callable[[str], bool] | None] = []
        self.seeds: list[int | None] = []
        self._guard = threading.Lock()

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event,
        stop_when: Callable[[str], bool] | None = None,
        seed: int | None = None,
    ) -> Generation:
        self.stop_rules.append(stop_when)
        self.seeds.append(seed)
        with self._guard:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            self.prompts.append(prompt)
            reply = self.replies.pop(0)
            pieces = [reply[i : i + self.chunk] for i in range(0, len(reply), self.chunk)]
            out: list[str] = []
            for piece in pieces[:max_tokens]:
                if cancel.wait(self.delay_s):
                    self.cancelled.set()
                    return Generation("".join(out), len(prompt), len(out), "cancelled")
                out.append(piece)
                if on_text is not None:
                    on_text(piece)
                if stop_when is not None and stop_when("".join(out)):
                    return Generation("".join(out), len(prompt), len(out), "stop")
            reason = "length" if len(pieces) > max_tokens else "stop"
            return Generation("".join(out), len(prompt), len(out), reason)
        finally:
            with self._guard:
                self.active -= 1

    def close(self) -> None:
        self.closed = True


def provider(engine: FakeEngine, max_tokens: int = 100) -> LocalModelProvider:
    return LocalModelProvider(lambda: engine, model="fake-0.5b", max_tokens=max_tokens)


def request(goal: str = "What is (17 * 23) + 4?", **extra: object) -> CompletionRequest:
    messages = (
        ChatMessage(role="system", content="You are Keel."),
        ChatMessage(role="user", content=goal),
    )
    return CompletionRequest(messages=messages, tools=(CALCULATOR,), **extra)  # type: ignore[arg-type]


CALL = (
    '<tool_call>\n{"name": "calculator", "arguments": {"expression": "(17 * 23) + 4"}}\n'
    "</tool_call>"
)


async def test_a_tool_call_comes_back_as_a_validated_call_with_real_usage() -> None:
    engine = FakeEngine([CALL])
    answer = await provider(engine).complete(request())

    assert answer.finish_reason == "tool_calls"
    assert answer.message.content == ""
    (call,) = answer.message.tool_calls
    assert call.name == "calculator"
    assert json.loads(call.arguments_json) == {"expression": "(17 * 23) + 4"}
    assert answer.model == "fake-0.5b"
    assert answer.provider == "local"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(engine.prompts[0])
    assert answer.usage.completion_tokens == -(-len(CALL) // 3)


async def test_a_fenced_json_call_is_accepted() -> None:
    fenced = '```json\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n```'
    answer = await provider(FakeEngine([fenced])).complete(request())

    assert [c.name for c in answer.message.tool_calls] == ["calculator"]


async def test_a_plain_answer_is_the_content() -> None:
    answer = await provider(FakeEngine(["  The answer is 395.\n"])).complete(request())

    assert answer.message.content == "The answer is 395."
    assert answer.message.tool_calls == ()
    assert answer.finish_reason == "stop"


async def test_invalid_arguments_earn_one_retry_with_the_reason_and_usage_counts_both() -> None:
    bad = '<tool_call>\n{"name": "calculator", "arguments": {"expr": "2+2"}}\n</tool_call>'
    engine = FakeEngine([bad, CALL])
    answer = await provider(engine).complete(request())

    assert len(engine.prompts) == 2
    retry = engine.prompts[1]
    assert "expression" in retry.split(engine.prompts[0].removesuffix("<|im_start|>assistant\n"))[1]
    assert "could not be used" in retry
    assert [c.name for c in answer.message.tool_calls] == ["calculator"]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(engine.prompts[0]) + len(engine.prompts[1])


async def test_a_second_failure_returns_the_text_instead_of_retrying_again() -> None:
    unknown = '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'
    engine = FakeEngine([unknown, unknown, CALL])
    answer = await provider(engine).complete(request())

    assert len(engine.prompts) == 2
    assert answer.message.tool_calls == ()
    assert "rm_rf" in answer.message.content


async def test_max_tokens_comes_from_the_request_then_the_default() -> None:
    engine = FakeEngine(["a" * 30, "b" * 30])
    small = provider(engine, max_tokens=4)

    default = await small.complete(CompletionRequest(messages=request().messages))
    asked = await small.complete(CompletionRequest(messages=request().messages, max_tokens=2))

    assert default.message.content == "a" * 12
    assert default.finish_reason == "length"
    assert asked.message.content == "b" * 6


async def test_the_requests_seed_reaches_the_engine() -> None:
    engine = FakeEngine(["a", "b"])
    local = provider(engine)
    await local.complete(CompletionRequest(messages=request().messages, seed=9))
    await local.complete(CompletionRequest(messages=request().messages))
    assert engine.seeds == [9, None]


async def test_generations_never_overlap_and_the_model_loads_once() -> None:
    loads = 0
    engine = FakeEngine(["one", "two", "three", "four"], delay_s=0.005)

    def load() -> FakeEngine:
        nonlocal loads
        loads += 1
        return engine

    local = LocalModelProvider(load, model="fake", max_tokens=100)
    plain = CompletionRequest(messages=request().messages)
    answers = await asyncio.gather(*(local.complete(plain) for _ in range(4)))

    assert sorted(a.message.content for a in answers) == ["four", "one", "three", "two"]
    assert engine.most_active == 1
    assert loads == 1


async def test_cancelling_a_request_stops_its_generation() -> None:
    engine = FakeEngine(["x" * 3000], chunk=1, delay_s=0.01)
    local = provider(engine, max_tokens=5000)
    task = asyncio.ensure_future(local.complete(CompletionRequest(messages=request().messages)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(engine.cancelled.wait, 5)


async def test_stream_sends_prose_as_deltas_then_the_completion() -> None:
    text = "The answer is 395, computed exactly."
    events = [e async for e in provider(FakeEngine([text])).stream(request())]

    *deltas, final = events
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert len(deltas) > 1  # token by token, not one lump
    assert "".join(d.content for d in deltas if isinstance(d, TextDelta)) == text
    assert isinstance(final, Completion)
    assert final.message.content == text


async def test_stream_of_a_tool_call_sends_no_json_deltas() -> None:
    events = [e async for e in provider(FakeEngine([CALL])).stream(request())]

    assert [type(e) for e in events] == [Completion]
    final = events[0]
    assert isinstance(final, Completion)
    assert final.message.tool_calls[0].name == "calculator"


async def test_aclose_closes_the_engine() -> None:
    engine = FakeEngine(["hi"])
    local = provider(engine)
    await local.start()
    await local.aclose()

    assert engine.closed


async def test_a_missing_model_file_fails_on_start_with_the_fetch_command(tmp_path: Path) -> None:
    local = LocalModelProvider.from_catalog("qwen2.5-coder-0.5b", tmp_path)

    with pytest.raises(FailedPrecondition, match="fetch.py --model qwen2.5-coder-0.5b"):
        await local.start()


async def test_an_explicit_file_with_the_wrong_digest_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF not really")
    local = LocalModelProvider.from_catalog("", tmp_path, model_path=weights, sha256="0" * 64)

    with pytest.raises(FailedPrecondition, match="refusing to load"):
        await local.start()


def gate(pieces: list[str]) -> str:
    sent: list[str] = []
    feeder = _StreamGate(sent.append)
    for piece in pieces:
        feeder.feed(piece)
    return "".join(sent)


def test_gate_passes_prose_and_strips_leading_space() -> None:
    assert gate(["  Hel", "lo", " world"]) == "Hello world"


def test_gate_holds_back_a_reply_that_starts_as_a_call() -> None:
    assert gate(["<tool", "_call>", '{"name"']) == ""
    assert gate(["```", "json"]) == ""
    assert gate(["{", '"a": 1}']) == ""


def test_gate_stops_at_a_call_after_prose() -> None:
    assert gate(["Let me compute. <to", "ol_call>\n{}"]) == "Let me compute. "


def test_gate_releases_text_that_only_looked_like_a_marker() -> None:
    assert gate(["a <", "b"]) == "a <b"


async def test_generation_stops_after_the_first_whole_call_when_tools_are_offered() -> None:
    repeated = CALL + "\n" + CALL + "\nThe answer is 395."
    engine = FakeEngine([repeated, repeated])
    local = provider(engine)

    with_tools = await local.complete(request())
    without = await local.complete(CompletionRequest(messages=request().messages))

    assert len(with_tools.message.tool_calls) == 1
    assert with_tools.usage is not None
    assert with_tools.usage.completion_tokens == -(-len(CALL) // 3)
    assert engine.stop_rules[1] is None  # plain chat runs to the end of its turn
    assert without.message.content == repeated.strip()


async def test_aclose_stops_a_running_generation_instead_of_waiting_for_it() -> None:
    engine = FakeEngine(["x" * 3000], chunk=1, delay_s=0.01)
    local = provider(engine, max_tokens=5000)
    task = asyncio.ensure_future(local.complete(CompletionRequest(messages=request().messages)))
    await asyncio.sleep(0.05)

    await local.aclose()

    assert engine.cancelled.is_set()
    assert engine.closed
    answer = await task  # the cut-short text, not a hang of 30 s
    assert 0 < len(answer.message.content) < 3000
