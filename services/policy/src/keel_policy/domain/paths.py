"""Argument paths compiled to selectors: the one value a path names, or every value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keel_policy.domain.jsonpath import Key, Step, Wildcard, compile_path, parse
from keel_policy.domain.scope import Scope

MISSING: Any = object()


def steps_of(path: str) -> tuple[Step, ...]:
    """A JSONPath as parsed; a plain dotted path as object keys only (its documented meaning:
    ``a.0`` is the key "0", never a list index)."""
    if path.startswith("$"):
        return parse(path)
    return tuple(Key(part) for part in path.split("."))


def has_wildcard(path: str) -> bool:
    return any(isinstance(step, Wildcard) for step in steps_of(path))


def getter(path: str) -> Callable[[Any], Any]:
    """The one value a path selects (the first, for a wildcard path), or ``MISSING``."""
    steps = steps_of(path)
    if len(steps) == 1 and isinstance(steps[0], Key):
        name = steps[0].name
        return lambda document: document.get(name, MISSING) if type(document) is dict else MISSING
    if all(isinstance(step, Key) for step in steps):
        names = tuple(step.name for step in steps if isinstance(step, Key))

        def get_keys(value: Any) -> Any:
            for name in names:
                if type(value) is not dict:
                    return MISSING
                value = value.get(name, MISSING)
                if value is MISSING:
                    return MISSING
            return value

        return get_keys
    select = compile_path(steps)

    def get_any(value: Any) -> Any:
        found = select(value)
        return found[0] if found else MISSING

    return get_any


def selector(path: str) -> Callable[[Scope], list[Any]]:
    """Every value a path selects; multi-value paths are memoised per decision (rules that
    share a path select once)."""
    steps = steps_of(path)
    select = compile_path(steps)
    if not any(isinstance(step, Wildcard) for step in steps):
        return lambda scope: select(scope.arguments)

    def memoised(scope: Scope) -> list[Any]:
        values = scope.memo.get(path)
        if values is None:
            values = scope.memo[path] = select(scope.arguments)
        return values

    return memoised
