"""Value tests specialised at load time by the expected value's type (``domain/compiler.py``
composes them into conditions): JSON equality, membership, numeric ranges, regexes.

Each returns a one-argument function, so the decision path does no type dispatch it could
have done once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Test = Callable[[Any], bool]
_NUMBERS = (int, float)


def same(value: Any, expected: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python's ``True == 1`` would say it is)."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return bool(value == expected)


def equals_test(expected: Any) -> Test:
    if expected is None:
        # ``equals: null``: an explicit JSON null (a missing key is not selected at all).
        return lambda value: value is None
    if isinstance(expected, str):
        # A str equals only a str: no type check needed.
        return lambda value: value == expected
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, int | float):
        return lambda value: type(value) in _NUMBERS and value == expected
    return lambda value: same(value, expected)


def one_of_test(options: tuple[Any, ...]) -> Test:
    strings = frozenset(option for option in options if isinstance(option, str))
    others = tuple(option for option in options if not isinstance(option, str))
    if not others:
        return lambda value: type(value) is str and value in strings

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return value in strings
        return any(same(value, option) for option in others)

    return test


def range_test(low: float | None, high: float | None) -> Test:
    # JSON numbers parse to exactly int or float; bool (an int subclass) is not a number here.
    if low is not None and high is not None:
        return lambda value: type(value) in _NUMBERS and low <= value <= high
    if low is not None:
        return lambda value: type(value) in _NUMBERS and value >= low
    return lambda value: type(value) in _NUMBERS and value <= high


def compile_regex(pattern: str) -> Callable[[str], re.Match[str] | None]:
    try:
        return re.compile(pattern).search
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc


def as_text(value: Any) -> str:
    """What a regex sees: strings as they are, anything else as its compact JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def text(value: Any, limit: int = 200) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
