"""What was derived from a frozen model, remembered for as long as the model lives.

A session's history is re-sent, re-counted and re-recorded at every step, and its messages and
tool specs never change (they are frozen): their token counts, canonical JSON and protobuf forms
are worth deriving once. Keyed by identity, not by value: hashing or comparing a pydantic model
field by field costs more than most of what is remembered (a value-keyed cache of canonical JSON
was 3.5% of the agent loop's samples under load). An entry leaves with its model, so a memo
never outgrows the live histories.

Across a process boundary there is no identity to key on: a service receives the same history
and catalog again at every step, as new protobuf messages. ``WireMemo`` keys what is parsed from
them by their wire bytes instead (serialising a message is far cheaper than validating it into a
model), with a bounded least-recently-used table, since a caller decides what it sends.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Wire(Protocol):
    """A protobuf message, as far as ``WireMemo`` needs one."""

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...  # noqa: N802


W = TypeVar("W", bound=Wire)


class IdentityMemo(Generic[K, V]):
    """``derive(obj)`` once per live object; the object must never change (a frozen model)."""

    def __init__(self, derive: Callable[[K], V]) -> None:
        self._derive = derive
        self._entries: dict[int, tuple[weakref.ref[K], V]] = {}

    def __call__(self, obj: K) -> V:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        value = self._derive(obj)
        entries = self._entries

        def forget(ref: weakref.ref[K]) -> None:
            # A later object may have taken the id (and the slot) before this callback ran.
            if entries.get(key, (None, None))[0] is ref:
                del entries[key]

        entries[key] = (weakref.ref(obj, forget), value)
        return value

    def __len__(self) -> int:
        return len(self._entries)


class WireMemo(Generic[W, V]):
    """``parse(message)`` once per distinct wire form, for the most recently used.

    Sound for any pure ``parse``: equal bytes are an equal message, so they parse to an equal
    value (a message whose bytes differ but means the same is only parsed again). A ``parse``
    that raises remembers nothing, so a refused message is refused every time. What is
    returned is shared between callers: it must be immutable (a frozen model).

    Bounded twice, since a caller decides what it sends: at most ``capacity`` entries and
    ``max_bytes`` of wire bytes in all (a value holds about as much again); a message over
    ``max_bytes // 64`` (a large tool output) is parsed every time and never remembered, so one
    caller cannot sweep the table with a few big messages.
    """

    def __init__(self, parse: Callable[[W], V], capacity: int, max_bytes: int) -> None:
        if capacity < 1 or max_bytes < 64:
            raise ValueError("a WireMemo needs a capacity of at least 1 and 64 bytes")
        self._parse = parse
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._max_entry_bytes = max_bytes // 64
        self._bytes = 0
        self._entries: OrderedDict[bytes, V] = OrderedDict()

    def __call__(self, message: W) -> V:
        key = message.SerializeToString(deterministic=True)
        if len(key) > self._max_entry_bytes:
            return self._parse(message)
        entries = self._entries
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
            return value
        value = self._parse(message)
        entries[key] = value
        self._bytes += len(key)
        while len(entries) > self._capacity or self._bytes > self._max_bytes:
            old, _ = entries.popitem(last=False)
            self._bytes -= len(old)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def wire_bytes(self) -> int:
        """The wire bytes remembered now (the keys)."""
        return self._bytes
