"""IdentityMemo: derived once per live object, never across two objects that shared an id;
WireMemo: parsed once per distinct wire form, within its capacity."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from keel_contracts.chat import ChatMessage
from keel_contracts.memo import IdentityMemo, WireMemo


def test_a_value_is_derived_once_per_object() -> None:
    calls: list[str] = []
    memo = IdentityMemo[ChatMessage, str](lambda m: calls.append(m.content) or m.content.upper())
    message = ChatMessage(role="user", content="hi")
    assert memo(message) == memo(message) == "HI"
    assert calls == ["hi"]


def test_equal_objects_are_derived_apart() -> None:
    """Identity, not value: two equal messages are two entries (no field-by-field compare)."""
    memo = IdentityMemo[ChatMessage, int](lambda m: id(m))
    first, second = ChatMessage(role="user", content="x"), ChatMessage(role="user", content="x")
    assert memo(first) != memo(second)
    assert len(memo) == 2


def test_an_entry_leaves_with_its_object_and_a_reused_id_is_derived_again() -> None:
    memo = IdentityMemo[ChatMessage, str](lambda m: m.content)
    message = ChatMessage(role="user", content="old")
    old_id = id(message)
    assert memo(message) == "old"
    del message
    gc.collect()
    assert len(memo) == 0
    # CPython hands a freed slot to the next object of the same size: find one that got the
    # old id and check that it is not answered with the dead object's value.
    for _ in range(1000):
        candidate = ChatMessage(role="user", content="new")
        if id(candidate) == old_id:
            break
    assert memo(candidate) == "new"


# ---- WireMemo: parsed once per distinct wire form, bounded ---------------------------------------


@dataclass
class _Wire:
    """Stands in for a protobuf message (keel_contracts depends on no generated code): a new
    object per request, its bytes its fields."""

    role: str
    content: str

    def SerializeToString(self, *, deterministic: bool = False) -> bytes:  # noqa: N802
        return f"{self.role}\0{self.content}".encode()


def _wire(content: str, role: str = "user") -> _Wire:
    return _Wire(role, content)


def _parse_counting(calls: list[str]) -> Callable[[_Wire], ChatMessage]:
    def parse(message: _Wire) -> ChatMessage:
        calls.append(message.content)
        if message.role == "nobody":
            raise ValueError("refused")
        return ChatMessage(role=message.role, content=message.content)  # type: ignore[arg-type]

    return parse


def test_a_message_sent_again_is_parsed_once_and_shared() -> None:
    """A new message object with the same bytes (the next request's copy of the history) gets
    the very model parsed the first time."""
    calls: list[str] = []
    memo = WireMemo(_parse_counting(calls), capacity=8, max_bytes=4096)
    first, again = memo(_wire("hi")), memo(_wire("hi"))
    assert first is again
    assert calls == ["hi"]


def test_messages_that_differ_in_any_field_are_parsed_apart() -> None:
    calls: list[str] = []
    memo = WireMemo(_parse_counting(calls), capacity=8, max_bytes=4096)
    as_user, as_assistant = memo(_wire("hi")), memo(_wire("hi", role="assistant"))
    assert (as_user.role, as_assistant.role) == ("user", "assistant")
    assert calls == ["hi", "hi"]


def test_a_refused_message_is_refused_every_time() -> None:
    calls: list[str] = []
    memo = WireMemo(_parse_counting(calls), capacity=8, max_bytes=4096)
    for _ in range(2):
        with pytest.raises(ValueError, match="refused"):
            memo(_wire("x", role="nobody"))
    assert calls == ["x", "x"]
    assert len(memo) == 0


def test_the_least_recently_used_leave_past_the_capacity() -> None:
    calls: list[str] = []
    memo = WireMemo(_parse_counting(calls), capacity=2, max_bytes=4096)
    memo(_wire("a"))
    memo(_wire("b"))
    memo(_wire("a"))  # a is now the most recently used
    memo(_wire("c"))  # b leaves
    assert len(memo) == 2
    memo(_wire("a"))
    memo(_wire("b"))
    assert calls == ["a", "b", "c", "b"]


def test_the_wire_bytes_remembered_stay_within_the_budget() -> None:
    """100 messages of 60 bytes against a 3,840-byte budget: the oldest leave, whatever the
    count allows."""
    calls: list[str] = []
    memo = WireMemo(_parse_counting(calls), capacity=1000, max_bytes=3840)
    for i in range(100):
        memo(_wire(f"{i:03d}" + "x" * 52))  # 60 bytes with the role and separator
    assert memo.wire_bytes == 3840
    assert len(memo) == 64
    memo(_wire("099" + "x" * 52))
    memo(_wire("000" + "x" * 52))
    assert calls.count("099" + "x" * 52) == 1
    assert calls.count("000" + "x" * 52) == 2


def test_a_message_too_large_to_remember_is_parsed_every_time() -> None:
    calls: list[str] = []
    memo = WireMemo(_parse_counting(calls), capacity=8, max_bytes=64 * 100)
    big = "y" * 200  # over max_bytes // 64 = 100
    first, again = memo(_wire(big)), memo(_wire(big))
    assert first == again
    assert calls == [big, big]
    assert len(memo) == 0


def test_a_memo_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="capacity"):
        WireMemo(_parse_counting([]), capacity=0, max_bytes=4096)
    with pytest.raises(ValueError, match="64 bytes"):
        WireMemo(_parse_counting([]), capacity=1, max_bytes=10)
