"""Ordered comparisons of one argument's value: numbers with numbers, times with times.

A time is ISO 8601 text (``2026-12-06``, ``2026-12-06T10:00:00+01:00``; without a zone it is
UTC) or ``now`` shifted by a duration (``now+1d``, ``now-90m``: the decision's time). The other
side may be another argument (``{path: $.start}``). A value of the wrong kind (text compared
with a number, text that is not a time) makes the comparison not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from keel_policy.domain.conditions import NOW, UNIT_S, VAR_REF, ArgConstraint, Bounds, PathOperand
from keel_policy.domain.names import Names
from keel_policy.domain.paths import MISSING, getter
from keel_policy.domain.scope import Scope
from keel_policy.errors import PolicyFileError

Test = Callable[[Any, Scope], bool]
_NUMBERS = (int, float)

ORDER: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "equals": lambda a, b: a == b,
}
SYMBOL = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "equals": "=="}


def resolve(value: Any, names: Names) -> Any:
    """A ``$vars.x`` reference's value; anything else as written."""
    if isinstance(value, str) and value.startswith(VAR_REF):
        return names.var(value[len(VAR_REF) :])
    return value


def timestamp(value: Any) -> float | None:
    """An ISO 8601 date or time as epoch seconds (a time without a zone is UTC), else None."""
    if type(value) is not str or len(value) < 10 or not value[:4].isdigit():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def comparison(name: str, operand: Any, names: Names) -> Test:
    """``value <op> operand`` as a test; a bad operand is a load error."""
    order = ORDER[name]
    if isinstance(operand, PathOperand):
        return _against_path(order, getter(operand.path))
    resolved = resolve(operand, names)
    if type(resolved) in _NUMBERS:
        bound = float(resolved)
        return lambda value, scope: type(value) in _NUMBERS and order(value, bound)
    if isinstance(resolved, str):
        now = NOW.match(resolved)
        if now is not None:
            shift = _shift(now.group(1), now.group(2), now.group(3))

            def against_now(value: Any, scope: Scope) -> bool:
                at = timestamp(value)
                return at is not None and order(at, scope.now + shift)

            return against_now
        fixed = timestamp(resolved)
        if fixed is not None:

            def against_time(value: Any, scope: Scope) -> bool:
                at = timestamp(value)
                return at is not None and order(at, fixed)

            return against_time
    raise PolicyFileError(
        f"{name}: {operand!r} is not a number, an ISO time, now[+-N(s|m|h|d)] or {{path: ...}}"
    )


def _against_path(order: Callable[[float, float], bool], other: Callable[[Any], Any]) -> Test:
    def against_path(value: Any, scope: Scope) -> bool:
        right = other(scope.arguments)
        if right is MISSING:
            return False
        if type(value) in _NUMBERS and type(right) in _NUMBERS:
            return order(value, right)
        left_at, right_at = timestamp(value), timestamp(right)
        return left_at is not None and right_at is not None and order(left_at, right_at)

    return against_path


def _shift(sign: str | None, amount: str | None, unit: str | None) -> float:
    if sign is None or amount is None or unit is None:
        return 0.0
    seconds = float(int(amount) * UNIT_S[unit])
    return seconds if sign == "+" else -seconds


def bounds(written: Bounds | ArgConstraint, names: Names) -> tuple[Callable[[float], bool], str]:
    """The numeric bounds of ``sum``/``state`` as one test of a total, and their text."""
    tests: list[Callable[[float], bool]] = []
    words: list[str] = []
    for name in ("lt", "lte", "gt", "gte", "equals"):
        operand = getattr(written, name)
        if operand is None:
            continue
        resolved = resolve(operand, names)
        if type(resolved) not in _NUMBERS:
            raise PolicyFileError(f"{name}: {operand!r} is {resolved!r}, not a number")
        tests.append(_bound(ORDER[name], float(resolved)))
        named = f" ({operand})" if operand != resolved else ""
        words.append(f"{SYMBOL[name]} {resolved:g}{named}")
    if len(tests) == 1:
        return tests[0], " and ".join(words)
    every = tuple(tests)
    return (lambda total: all(test(total) for test in every)), " and ".join(words)


def _bound(order: Callable[[float, float], bool], limit: float) -> Callable[[float], bool]:
    return lambda total: order(total, limit)
