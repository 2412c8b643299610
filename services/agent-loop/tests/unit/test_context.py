"""Token estimate and history trimming: oldest turns go first, the goal and tool pairs stay."""

from __future__ import annotations

from keel_agent_loop.domain import ChatMessage, ToolCall
from keel_agent_loop.domain.context import (
    EstimateCounter,
    count_messages,
    fit_memories,
    trim_history,
    turns,
)

COUNTER = EstimateCounter()


def msg(role: str, content: str = "", **kw: object) -> ChatMessage:
    return ChatMessage(role=role, content=content, **kw)  # type: ignore[arg-type]


def tool_turn(n: int, size: int = 400) -> list[ChatMessage]:
    call = ToolCall(id=f"c{n}", name="calc", arguments_json="{}")
    return [
        msg("assistant", f"turn {n}", tool_calls=(call,)),
        msg("tool", "x" * size, tool_call_id=f"c{n}", name="calc"),
    ]


def history(n_turns: int) -> list[ChatMessage]:
    messages = [msg("system", "rules"), msg("system", "memory"), msg("user", "the goal")]
    for n in range(n_turns):
        messages += tool_turn(n)
    return messages


def test_the_estimate_is_a_quarter_of_the_characters_plus_framing() -> None:
    assert COUNTER.text("") == 0
    assert COUNTER.text("abcd") == 1
    assert COUNTER.text("abcde") == 2
    assert COUNTER.message(msg("user", "a" * 40)) == 10 + 4
    call = ToolCall(id="c", name="calc", arguments_json='{"e":1}')  # 4 + 7 chars
    assert COUNTER.message(msg("assistant", "", tool_calls=(call,))) == 3 + 4


def test_history_within_budget_is_untouched() -> None:
    messages = history(2)
    kept, dropped = trim_history(messages, 10_000, COUNTER)
    assert (kept, dropped) == (messages, 0)


def test_oldest_turns_go_first_and_system_and_goal_stay() -> None:
    messages = history(6)
    budget = count_messages(COUNTER, messages) - 100
    kept, dropped = trim_history(messages, budget, COUNTER)
    assert dropped == 2  # one whole turn: the call and its result
    assert kept[:3] == messages[:3]
    assert kept[3].content == "turn 1"
    assert count_messages(COUNTER, kept) <= budget


def test_a_tool_call_is_never_split_from_its_results() -> None:
    messages = history(5)
    for budget in range(0, count_messages(COUNTER, messages), 37):
        kept, _ = trim_history(messages, budget, COUNTER)
        rest = kept[3:]
        assert rest[0].role == "assistant"
        answered = {m.tool_call_id for m in rest if m.role == "tool"}
        asked = {c.id for m in rest for c in m.tool_calls}
        assert answered == asked


def test_the_latest_turn_stays_even_over_budget() -> None:
    messages = history(3)
    kept, dropped = trim_history(messages, 1, COUNTER)
    assert dropped == 4
    assert kept == messages[:3] + messages[-2:]


def test_turns_group_calls_with_their_results() -> None:
    messages = [*tool_turn(0), msg("assistant", "plain"), msg("user", "more")]
    assert [len(g) for g in turns(messages)] == [2, 1, 1]


def test_memories_are_kept_best_first_within_their_budget() -> None:
    items = ["a" * 40, "b" * 40, "c" * 40]  # 10 tokens + 1 each
    assert fit_memories(items, 22, COUNTER) == items[:2]
    assert fit_memories(items, 5, COUNTER) == []
