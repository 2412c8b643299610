"""Token counts are incremental: a session's history is fitted to the window before every model
call, but each message is counted once, however many steps re-send it."""

from __future__ import annotations

import gc
from collections import Counter

import pytest

from keel_agent_loop.domain import AgentLoop, AgentState, ChatMessage, LoopConfig, ToolOutcome
from keel_agent_loop.domain.context import CachingCounter, EstimateCounter
from keel_agent_loop.domain.progress import prompt_record
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)


class SpyCounter(EstimateCounter):
    """The estimate, remembering which messages it was asked to count."""

    def __init__(self) -> None:
        self.counted: Counter[int] = Counter()

    def message(self, message: ChatMessage) -> int:
        self.counted[id(message)] += 1
        return super().message(message)


async def test_a_long_session_counts_each_message_once() -> None:
    steps = 6
    llm = ScriptedLLM([*(call_tools(("clock", {})) for _ in range(steps)), answer("done")])
    tools = FakeTools({"clock": ToolOutcome(status="ok", output="12:00")})
    spy = SpyCounter()
    loop = AgentLoop(llm, tools, FakeMemory(), RecordingSink(), LoopConfig("sys"), counter=spy)
    state = AgentState(session_id="s1", goal="tell the time", max_iterations=steps + 2)
    await loop.run(state)
    assert state.status == "completed"
    # Every message of the history was fitted at least once, and none was counted twice
    # (before, each step counted the whole history twice: 2 x 7 x ~8 messages here).
    assert set(spy.counted) >= {id(m) for m in state.messages[:-1]}
    assert max(spy.counted.values()) == 1


def test_the_cache_gives_the_inner_count_and_forgets_dead_messages() -> None:
    counter = CachingCounter(EstimateCounter())
    message = ChatMessage(role="user", content="a" * 40)
    assert counter.message(message) == EstimateCounter().message(message) == 14
    assert counter.message(message) == 14
    del message
    gc.collect()
    # A new message (perhaps at the same address) is counted afresh, not given a stale count.
    other = ChatMessage(role="user", content="a" * 400)
    assert counter.message(other) == 104
    assert counter.text("abcde") == 2


def test_recording_a_prompt_never_compares_messages_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sessions alike (one system prompt, the same tool results) hold equal but distinct
    messages: recording each step's prompt must not compare them field by field."""
    sessions = [
        [ChatMessage(role="system", content="sys"), ChatMessage(role="user", content="goal")]
        for _ in range(3)
    ]
    records = [prompt_record(history, [], with_tools=False) for history in sessions]

    def refuse(self: object, other: object) -> bool:
        raise AssertionError("messages compared by value")

    monkeypatch.setattr(ChatMessage, "__eq__", refuse)
    again = [prompt_record(history, [], with_tools=False) for history in sessions]
    assert again == records
    assert len({r["prompt_digest"] for r in records}) == 1
