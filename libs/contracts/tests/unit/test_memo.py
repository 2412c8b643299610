"""IdentityMemo: derived once per live object, never across two objects that shared an id."""

from __future__ import annotations

import gc

from keel_contracts.chat import ChatMessage
from keel_contracts.memo import IdentityMemo


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
