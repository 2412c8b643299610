"""Argument constraints compiled into plain functions, once per policy load.

The decision path only calls these; Explain calls ``explain`` for the same tests in words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from keel_policy.domain.jsonpath import Key, Selector, Step, Wildcard, compile_path, parse
from keel_policy.domain.models import ArgConstraint
from keel_policy.domain.results import ConditionTrace

Test = Callable[[Any], bool]
# (arguments, memo) -> passed. ``memo`` lives for one evaluation: multi-value paths shared by
# several rules are selected once per call.
Check = Callable[[dict[str, Any], dict[str, list[Any]]], bool]
_MISSING: Any = object()
_NUMBERS = (int, float)


class CompiledConstraint:
    """One constraint: a selector over the arguments and a test per selected value.

    ``check`` is a single closure specialised at load time (single-value paths never build a
    list; tests are specialised by the expected value's type); ``explain`` is the slow path
    that says what it saw.
    """

    __slots__ = ("_all", "_select", "_test", "check", "text")

    def __init__(self, constraint: ArgConstraint) -> None:
        steps = _steps(constraint.path)
        self._select = compile_path(steps)
        self._test = _value_test(constraint)
        self._all = constraint.match == "all"
        self.text = describe(constraint)
        self.check = _check(constraint.path, steps, self._select, self._test, self._all)

    def explain(self, arguments: dict[str, Any]) -> ConditionTrace:
        values = self._select(arguments)
        if not values:
            return ConditionTrace(condition=self.text, passed=False, detail="path selects nothing")
        results = [self._test(value) for value in values]
        passed = all(results) if self._all else any(results)
        failing = [v for v, ok in zip(values, results, strict=True) if not ok]
        detail = f"values: {_text(values)}"
        if failing:
            detail += f"; failing: {_text(failing)}"
        return ConditionTrace(condition=self.text, passed=passed, detail=detail)


def _steps(path: str) -> tuple[Step, ...]:
    """A JSONPath as parsed; a plain dotted path as object keys only (its documented meaning:
    ``a.0`` is the key "0", never a list index)."""
    if path.startswith("$"):
        return parse(path)
    return tuple(Key(part) for part in path.split("."))


def _check(path: str, steps: tuple[Step, ...], select: Selector, test: Test, all_: bool) -> Check:
    if any(isinstance(step, Wildcard) for step in steps):
        return _multi_check(path, select, test, all_)
    get = _getter(steps)

    def check(arguments: dict[str, Any], memo: dict[str, list[Any]]) -> bool:
        value = get(arguments)
        return value is not _MISSING and test(value)

    return check


def _multi_check(path: str, select: Selector, test: Test, all_: bool) -> Check:
    def check(arguments: dict[str, Any], memo: dict[str, list[Any]]) -> bool:
        values = memo.get(path)
        if values is None:
            values = memo[path] = select(arguments)
        if not values:
            return False
        if all_:
            for value in values:
                if not test(value):
                    return False
            return True
        for value in values:
            if test(value):
                return True
        return False

    return check


def _getter(steps: tuple[Step, ...]) -> Callable[[Any], Any]:
    """The one value a wildcard-free path selects, or _MISSING."""
    if len(steps) == 1 and isinstance(steps[0], Key):
        name = steps[0].name
        return lambda arguments: arguments.get(name, _MISSING)
    if all(isinstance(step, Key) for step in steps):
        names = tuple(step.name for step in steps if isinstance(step, Key))

        def get_keys(value: Any) -> Any:
            for name in names:
                if type(value) is not dict:
                    return _MISSING
                value = value.get(name, _MISSING)
                if value is _MISSING:
                    return _MISSING
            return value

        return get_keys
    select = compile_path(steps)

    def get_any(value: Any) -> Any:
        found = select(value)
        return found[0] if found else _MISSING

    return get_any


def _value_test(constraint: ArgConstraint) -> Test:
    tests: list[Test] = []
    if constraint.equals is not None:
        tests.append(_equals(constraint.equals))
    if constraint.one_of is not None:
        tests.append(_one_of(constraint.one_of))
    if constraint.regex is not None:
        search = re.compile(constraint.regex).search
        tests.append(
            lambda value: search(value if type(value) is str else as_text(value)) is not None
        )
    if constraint.min is not None or constraint.max is not None:
        tests.append(_in_range(constraint.min, constraint.max))
    if len(tests) == 1:
        return tests[0]
    return lambda value: all(test(value) for test in tests)


def same(value: Any, expected: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python's ``True == 1`` would say it is)."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return bool(value == expected)


def _equals(expected: Any) -> Test:
    if isinstance(expected, str):
        # A str equals only a str: no type check needed.
        return lambda value: value == expected
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, int | float):
        return lambda value: type(value) in _NUMBERS and value == expected
    return lambda value: same(value, expected)


def _one_of(options: tuple[Any, ...]) -> Test:
    strings = frozenset(option for option in options if isinstance(option, str))
    others = tuple(option for option in options if not isinstance(option, str))

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return value in strings
        return any(same(value, option) for option in others)

    return test


def _in_range(low: float | None, high: float | None) -> Test:
    # JSON numbers parse to exactly int or float; bool (an int subclass) is not a number here.
    if low is not None and high is not None:
        return lambda value: type(value) in _NUMBERS and low <= value <= high
    if low is not None:
        return lambda value: type(value) in _NUMBERS and value >= low
    return lambda value: type(value) in _NUMBERS and value <= high


def as_text(value: Any) -> str:
    """What a regex sees: strings as they are, anything else as its compact JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def describe(constraint: ArgConstraint) -> str:
    parts: list[str] = []
    if constraint.equals is not None:
        parts.append(f"equals {_text(constraint.equals)}")
    if constraint.one_of is not None:
        parts.append(f"is one of {_text(list(constraint.one_of))}")
    if constraint.regex is not None:
        parts.append(f"matches /{constraint.regex}/")
    if constraint.min is not None and constraint.max is not None:
        parts.append(f"is a number in [{constraint.min:g}, {constraint.max:g}]")
    elif constraint.min is not None:
        parts.append(f"is a number >= {constraint.min:g}")
    elif constraint.max is not None:
        parts.append(f"is a number <= {constraint.max:g}")
    return f"{constraint.path} ({constraint.match}) {' and '.join(parts)}"


def _text(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
