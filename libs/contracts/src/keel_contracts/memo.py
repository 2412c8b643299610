"""What was derived from a frozen model, remembered for as long as the model lives.

A session's history is re-sent, re-counted and re-recorded at every step, and its messages and
tool specs never change (they are frozen): their token counts, canonical JSON and protobuf forms
are worth deriving once. Keyed by identity, not by value: hashing or comparing a pydantic model
field by field costs more than most of what is remembered (a value-keyed cache of canonical JSON
was 3.5% of the agent loop's samples under load). An entry leaves with its model, so a memo
never outgrows the live histories.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


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
