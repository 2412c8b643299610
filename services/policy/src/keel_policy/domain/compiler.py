"""Conditions compiled into plain closures, once per policy load.

Every condition becomes a ``Node``: ``check(scope)`` is the decision path (no parsing, no
lookups of names: lists, variables, regexes and paths were resolved here), ``explain(scope)``
the slow path that says in words what it saw. Unknown ``$lists``/``$vars`` references and
operands of the wrong type fail here, at load, with the rule named by the caller.

Extension point: ``COMPILERS`` maps each kind of condition (``ArgConstraint.kind``) to its
compiler. A new kind is one optional field on ``ArgConstraint`` named in ``conditions.KINDS``,
a compiler registered here, and, when it needs more than the arguments, a slot on ``Scope``
that the engine fills from the caller (``PolicyEngine.scope``) — as ``provenance:`` does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from keel_policy.domain import matchers
from keel_policy.domain.comparisons import ORDER, bounds, comparison, resolve
from keel_policy.domain.conditions import LIST_REF, ArgConstraint, PathOperand, duration_s
from keel_policy.domain.names import Names
from keel_policy.domain.paths import MISSING, getter, has_wildcard, selector, steps_of
from keel_policy.domain.provenance import Finding, location_pattern, source_test
from keel_policy.domain.results import ConditionTrace
from keel_policy.domain.scope import Scope
from keel_policy.domain.state import Meter
from keel_policy.domain.words import describe, references
from keel_policy.errors import PolicyFileError

Check = Callable[[Scope], bool]
# (value, scope) -> passed
Test = Callable[[Any, Scope], bool]
_NUMBERS = (int, float)


class Node:
    """One compiled condition."""

    __slots__ = ("check", "explain", "text")

    def __init__(self, check: Check, text: str, explain: Callable[[Scope], ConditionTrace]) -> None:
        self.check = check
        self.text = text
        self.explain = explain


Compiler = Callable[[ArgConstraint, Names], Node]


def compile_condition(condition: ArgConstraint, names: Names) -> Node:
    compiler = COMPILERS.get(condition.kind)
    if compiler is None:
        raise PolicyFileError(f"no compiler for condition kind {condition.kind!r}")
    return compiler(condition, names)


# ---- path constraints ----------------------------------------------------------------------


def _path_constraint(constraint: ArgConstraint, names: Names) -> Node:
    path = constraint.path
    assert path is not None
    text = describe(constraint)
    select = selector(path)
    refs = references(constraint, names)
    if constraint.missing is True:

        def absent(scope: Scope) -> bool:
            return not select(scope)

        def explain_absent(scope: Scope) -> ConditionTrace:
            values = select(scope)
            detail = "path selects nothing" if not values else f"values: {_text(values)}"
            return ConditionTrace(condition=text, passed=not values, detail=detail)

        return Node(absent, text, explain_absent)
    test = _value_test(constraint, names)
    all_ = constraint.match == "all"
    check = _fast_check(constraint, path, names) or _quantified(path, select, test, all_)

    def explain(scope: Scope) -> ConditionTrace:
        values = select(scope)
        if not values:
            return ConditionTrace(condition=text, passed=False, detail="path selects nothing")
        results = [test(value, scope) for value in values]
        passed = all(results) if all_ else any(results)
        failing = [v for v, ok in zip(values, results, strict=True) if not ok]
        detail = f"values: {_text(values)}"
        if failing:
            detail += f"; failing: {_text(failing)}"
        return ConditionTrace(condition=text, passed=passed, detail=detail + refs())

    return Node(check, text, explain)


def _fast_check(constraint: ArgConstraint, path: str, names: Names) -> Check | None:
    """A single-value path whose tests need only the value (equals, one_of, in a list,
    min/max, regex, startswith/endswith/contains, numeric and fixed-time bounds): one closure
    calling one one-argument test, as before the algebra grew. None otherwise."""
    if has_wildcard(path) or constraint.where is not None:
        return None
    tests = _value_only_tests(constraint, names)
    if tests is None:
        return None
    get = getter(path)
    if len(tests) == 1:
        (only,) = tests

        def single(scope: Scope) -> bool:
            value = get(scope.arguments)
            return value is not MISSING and only(value)

        return single
    every = tuple(tests)

    def several(scope: Scope) -> bool:
        value = get(scope.arguments)
        if value is MISSING:
            return False
        for test in every:
            if not test(value):
                return False
        return True

    return several


def _value_only_tests(
    constraint: ArgConstraint, names: Names
) -> list[Callable[[Any], bool]] | None:
    tests: list[Callable[[Any], bool]] = []
    if constraint.tests_equals:
        tests.append(matchers.equals_test(resolve(constraint.equals, names)))
    if constraint.one_of is not None:
        tests.append(matchers.one_of_test(constraint.one_of))
    if constraint.in_ is not None:
        listed = _static_list(constraint.in_, names)
        if listed is None:
            return None
        tests.append(matchers.one_of_test(listed))
    for name in ("regex", "startswith", "endswith", "contains"):
        operand = getattr(constraint, name)
        if operand is not None:
            tests.append(_text_test(name, _string(operand, names, name)))
    if constraint.min is not None or constraint.max is not None:
        tests.append(matchers.range_test(constraint.min, constraint.max))
    for name in ("lt", "lte", "gt", "gte"):
        operand = getattr(constraint, name)
        if operand is None:
            continue
        resolved = resolve(operand, names) if not isinstance(operand, PathOperand) else None
        if not isinstance(resolved, int | float) or isinstance(resolved, bool):
            return None  # times, ``now`` and paths need the scope
        tests.append(_number_bound(name, float(resolved)))
    return tests


def _static_list(operand: Any, names: Names) -> tuple[Any, ...] | None:
    """The items of a literal or file list; None for a path or a topic-backed list."""
    if isinstance(operand, PathOperand):
        return None
    if isinstance(operand, str):
        if not operand.startswith(LIST_REF):
            return None
        named = names.named_list(operand[len(LIST_REF) :])
        return None if named.topic else named.items
    return tuple(operand)


def _number_bound(name: str, bound: float) -> Callable[[Any], bool]:
    order = ORDER[name]
    return lambda value: type(value) in _NUMBERS and order(value, bound)


def _quantified(path: str, select: Callable[[Scope], list[Any]], test: Test, all_: bool) -> Check:
    if not has_wildcard(path):
        get = getter(path)

        def single(scope: Scope) -> bool:
            value = get(scope.arguments)
            return value is not MISSING and test(value, scope)

        return single

    def multi(scope: Scope) -> bool:
        values = select(scope)
        if not values:
            return False
        if all_:
            for value in values:
                if not test(value, scope):
                    return False
            return True
        for value in values:
            if test(value, scope):
                return True
        return False

    return multi


def _value_test(constraint: ArgConstraint, names: Names) -> Test:
    tests = [*_fixed_tests(constraint, names), *_named_tests(constraint, names)]
    if constraint.where is not None:
        tests.append(_where(constraint.where, names))
    if not tests:  # ``missing: false`` alone: something is there
        return lambda value, scope: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda value, scope: first(value, scope) and second(value, scope)
    every = tuple(tests)
    return lambda value, scope: all(test(value, scope) for test in every)


def _fixed_tests(constraint: ArgConstraint, names: Names) -> list[Test]:
    """equals, one_of, min/max: the value alone decides."""
    tests: list[Test] = []
    if constraint.tests_equals:
        equals = matchers.equals_test(resolve(constraint.equals, names))
        tests.append(lambda value, scope: equals(value))
    if constraint.one_of is not None:
        one_of = matchers.one_of_test(constraint.one_of)
        tests.append(lambda value, scope: one_of(value))
    if constraint.min is not None or constraint.max is not None:
        in_range = matchers.range_test(constraint.min, constraint.max)
        tests.append(lambda value, scope: in_range(value))
    return tests


def _named_tests(constraint: ArgConstraint, names: Names) -> list[Test]:
    """in, text tests and comparisons: operands may be lists, variables, paths or ``now``."""
    tests: list[Test] = []
    if constraint.in_ is not None:
        tests.append(_membership(constraint.in_, names))
    for name in ("regex", "startswith", "endswith", "contains"):
        operand = getattr(constraint, name)
        if operand is not None:
            tests.append(_scoped(_text_test(name, _string(operand, names, name))))
    for name in ("lt", "lte", "gt", "gte"):
        operand = getattr(constraint, name)
        if operand is not None:
            tests.append(comparison(name, operand, names))
    return tests


def _scoped(test: Callable[[Any], bool]) -> Test:
    return lambda value, scope: test(value)


def _string(operand: str, names: Names, test: str) -> str:
    value = resolve(operand, names)
    if not isinstance(value, str):
        raise PolicyFileError(f"{test}: {operand} is {value!r}, not a string")
    return value


def _text_test(name: str, operand: str) -> Callable[[Any], bool]:
    if name == "regex":
        try:
            search = matchers.compile_regex(operand)
        except ValueError as exc:
            raise PolicyFileError(str(exc)) from exc
        return lambda value: (
            search(value if type(value) is str else matchers.as_text(value)) is not None
        )
    if name == "startswith":
        return lambda value: type(value) is str and value.startswith(operand)
    if name == "endswith":
        return lambda value: type(value) is str and value.endswith(operand)
    return lambda value: type(value) is str and operand in value


def _membership(operand: Any, names: Names) -> Test:
    if isinstance(operand, PathOperand):
        others = selector(operand.path)

        def among_path(value: Any, scope: Scope) -> bool:
            if type(value) is str:  # a str equals only a str: the list's own search is exact
                return value in others(scope)
            return any(matchers.same(value, other) for other in others(scope))

        return among_path
    if isinstance(operand, str):
        if not operand.startswith(LIST_REF):
            raise PolicyFileError(f"in: {operand!r} is not a list, $lists.<name> or {{path: ...}}")
        named = names.named_list(operand[len(LIST_REF) :])
        static = matchers.one_of_test(named.items)
        if not named.topic:
            return lambda value, scope: static(value)
        live = names.live.of(operand[len(LIST_REF) :])
        return lambda value, scope: static(value) or (type(value) is str and value in live)
    one_of = matchers.one_of_test(tuple(operand))
    return lambda value, scope: one_of(value)


def _where(conditions: tuple[Any, ...], names: Names) -> Test:
    nodes = tuple(compile_condition(c, names) for c in conditions)
    checks = tuple(node.check for node in nodes)

    def each(value: Any, scope: Scope) -> bool:
        inner = scope.within(value)
        return all(check(inner) for check in checks)

    return each


# ---- sum --------------------------------------------------------------------------------------


def _sum(condition: ArgConstraint, names: Names) -> Node:
    paths = condition.sum or ()
    selects = tuple(selector(path) for path in paths)
    within, bound_text = bounds(condition, names)
    text = f"sum({' + '.join(paths)}) {bound_text}"

    def total(scope: Scope) -> float | None:
        found = 0.0
        for select in selects:
            for value in select(scope):
                if type(value) not in _NUMBERS:
                    return None
                found += value
        return found

    def check(scope: Scope) -> bool:
        found = total(scope)
        return found is not None and within(found)

    def explain(scope: Scope) -> ConditionTrace:
        found = total(scope)
        detail = "a selected value is not a number" if found is None else f"sum: {found:g}"
        return ConditionTrace(condition=text, passed=check(scope), detail=detail)

    return Node(check, text, explain)


# ---- state ----------------------------------------------------------------------------------


def _state(condition: ArgConstraint, names: Names) -> Node:
    spec = condition.state
    assert spec is not None
    meter = Meter(tool=spec.count or spec.tool or "*", path=spec.sum)
    names.meters[meter.id] = meter
    window = duration_s(spec.window)
    within, bound_text = bounds(spec, names)
    measure = f"calls of {spec.count}" if spec.count else f"sum of {spec.sum} over {spec.tool}"
    text = f"state: {measure} per {spec.per} in {spec.window}, this call included, {bound_text}"
    per = spec.per
    state = names.state
    meter_id = meter.id
    this_call = _contribution(meter)

    def total(scope: Scope) -> tuple[float, float]:
        key = f"{per}:{scope.per(per)}"
        # Rules reading the same total in one decision read it once.
        memo_key = f"\0state|{meter_id}|{key}|{window}"
        held = scope.memo.get(memo_key)
        if held is None:
            held = [state.total(meter_id, key, scope.now - window, scope.call_id)]
            scope.memo[memo_key] = held
        return held[0], this_call(scope)

    def check(scope: Scope) -> bool:
        before, mine = total(scope)
        return within(before + mine)

    def explain(scope: Scope) -> ConditionTrace:
        before, mine = total(scope)
        detail = (
            f"{meter_id} for {per} {scope.per(per)!r}: {before:g} so far + {mine:g} "
            f"this call = {before + mine:g}"
        )
        return ConditionTrace(condition=text, passed=check(scope), detail=detail)

    return Node(check, text, explain)


def _contribution(meter: Meter) -> Callable[[Scope], float]:
    """What this call adds to the meter (nothing unless its tool is one the meter counts)."""
    amount = charge_amount(meter)
    fits = re.compile(fnmatch.translate(meter.tool)).match
    return lambda scope: amount(scope) if fits(scope.tool) is not None else 0.0


def charge_amount(meter: Meter) -> Callable[[Scope], float]:
    if meter.path is None:
        return lambda scope: 1.0
    select = selector(meter.path)

    def summed(scope: Scope) -> float:
        return float(sum(v for v in select(scope) if type(v) in _NUMBERS))

    return summed


# ---- provenance -------------------------------------------------------------------------------


def _provenance(condition: ArgConstraint, names: Names) -> Node:
    spec = condition.provenance
    assert spec is not None
    located = location_pattern(steps_of(spec.path)).match
    tool = source_test(spec)
    only = spec.not_in == "task"
    text = spec.describe()

    def fits(finding: Finding) -> bool:
        if only and finding.in_task:
            return False
        if located(finding.path) is None:
            return False
        if tool is None:
            return True
        return any(tool(source) for source in finding.sources)

    def check(scope: Scope) -> bool:
        for finding in scope.provenance:
            if fits(finding):
                return True
        return False

    def explain(scope: Scope) -> ConditionTrace:
        if not scope.provenance:
            return ConditionTrace(condition=text, passed=False, detail="no provenance findings")
        matched = [f for f in scope.provenance if fits(f)]
        if matched:
            detail = "matched: " + "; ".join(f.shown() for f in matched[:5])
        else:
            shown = "; ".join(f.shown() for f in scope.provenance[:5])
            detail = f"no finding fits (findings: {shown})"
        return ConditionTrace(condition=text, passed=bool(matched), detail=detail)

    return Node(check, text, explain)


# ---- combinators ----------------------------------------------------------------------------


def _not(condition: ArgConstraint, names: Names) -> Node:
    assert condition.not_ is not None
    inner = compile_condition(condition.not_, names)
    inner_check = inner.check
    text = f"not ({inner.text})"

    def explain(scope: Scope) -> ConditionTrace:
        seen = inner.explain(scope)
        return ConditionTrace(condition=text, passed=not seen.passed, detail=seen.detail)

    return Node(lambda scope: not inner_check(scope), text, explain)


def _any_of(condition: ArgConstraint, names: Names) -> Node:
    nodes = tuple(compile_condition(c, names) for c in condition.any_of or ())
    checks = tuple(node.check for node in nodes)
    text = "any of (" + "; ".join(node.text for node in nodes) + ")"

    def check(scope: Scope) -> bool:
        for inner in checks:
            if inner(scope):
                return True
        return False

    return Node(check, text, _explain_all(text, nodes, any))


def _all_of(condition: ArgConstraint, names: Names) -> Node:
    nodes = tuple(compile_condition(c, names) for c in condition.all_of or ())
    checks = tuple(node.check for node in nodes)
    text = "all of (" + "; ".join(node.text for node in nodes) + ")"

    def check(scope: Scope) -> bool:
        for inner in checks:
            if not inner(scope):
                return False
        return True

    return Node(check, text, _explain_all(text, nodes, all))


def _explain_all(
    text: str, nodes: tuple[Node, ...], combine: Callable[[list[bool]], bool]
) -> Callable[[Scope], ConditionTrace]:
    def explain(scope: Scope) -> ConditionTrace:
        seen = [node.explain(scope) for node in nodes]
        detail = "; ".join(
            f"[{'pass' if s.passed else 'fail'}] {s.condition}: {s.detail}" for s in seen
        )
        return ConditionTrace(
            condition=text, passed=combine([s.passed for s in seen]), detail=detail
        )

    return explain


# The extension point: one compiler per kind of condition (``ArgConstraint.kind``).
COMPILERS: dict[str, Compiler] = {
    "path": _path_constraint,
    "not_": _not,
    "any_of": _any_of,
    "all_of": _all_of,
    "sum": _sum,
    "state": _state,
    "provenance": _provenance,
}


def _text(value: Any, limit: int = 200) -> str:
    return matchers.text(value, limit)
