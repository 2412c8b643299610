"""Conditions in words, for ``Explain`` and ``keel policy test --explain``: what a condition
asks, and the lists and variables it names as they are at the moment it is explained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keel_policy.domain.comparisons import SYMBOL
from keel_policy.domain.conditions import LIST_REF, VAR_REF, ArgConstraint, PathOperand
from keel_policy.domain.matchers import text
from keel_policy.domain.names import Names


def describe(constraint: ArgConstraint) -> str:
    parts = [*_membership(constraint), *_texts(constraint), *_numbers(constraint)]
    if constraint.where is not None:
        parts.append(f"each selected value satisfies {len(constraint.where)} condition(s)")
    if constraint.missing is True:
        parts.append("is missing")
    elif constraint.missing is False and not parts:
        parts.append("is present")
    return f"{constraint.path or ''} ({constraint.match}) {' and '.join(parts)}"


def _membership(constraint: ArgConstraint) -> list[str]:
    parts: list[str] = []
    if constraint.tests_equals:
        parts.append(f"equals {text(constraint.equals)}")
    if constraint.one_of is not None:
        parts.append(f"is one of {text(list(constraint.one_of))}")
    operand = constraint.in_
    if isinstance(operand, PathOperand):
        parts.append(f"is among the values of {operand.path}")
    elif isinstance(operand, str):
        parts.append(f"is in {operand}")
    elif operand is not None:
        parts.append(f"is in {text(list(operand))}")
    return parts


def _texts(constraint: ArgConstraint) -> list[str]:
    parts: list[str] = []
    if constraint.regex is not None:
        parts.append(f"matches /{constraint.regex}/")
    for name in ("startswith", "endswith", "contains"):
        operand = getattr(constraint, name)
        if operand is not None:
            parts.append(f"{name} {text(operand)}")
    return parts


def _numbers(constraint: ArgConstraint) -> list[str]:
    parts: list[str] = []
    if constraint.min is not None and constraint.max is not None:
        parts.append(f"is a number in [{constraint.min:g}, {constraint.max:g}]")
    elif constraint.min is not None:
        parts.append(f"is a number >= {constraint.min:g}")
    elif constraint.max is not None:
        parts.append(f"is a number <= {constraint.max:g}")
    for name in ("lt", "lte", "gt", "gte"):
        operand = getattr(constraint, name)
        if operand is not None:
            shown = f"{{path: {operand.path}}}" if isinstance(operand, PathOperand) else operand
            parts.append(f"{SYMBOL[name]} {shown}")
    return parts


def references(constraint: ArgConstraint, names: Names) -> Callable[[], str]:
    """The lists and variables the constraint names, shown as they are when called (a
    topic-backed list changes while the service runs)."""
    shown: list[Callable[[], str]] = []
    operands = [constraint.equals, constraint.in_, constraint.regex, constraint.startswith]
    operands += [constraint.endswith, constraint.contains, constraint.lt, constraint.lte]
    operands += [constraint.gt, constraint.gte]
    for operand in operands:
        if not isinstance(operand, str):
            continue
        if operand.startswith(VAR_REF):
            shown.append(_fixed(f"{operand} = {text(names.var(operand[len(VAR_REF) :]))}"))
        elif operand.startswith(LIST_REF):
            shown.append(_listed(operand, names))
    if not shown:
        return lambda: ""
    return lambda: "".join(f"; {line()}" for line in shown)


def _fixed(line: str) -> Callable[[], str]:
    return lambda: line


def _listed(operand: str, names: Names) -> Callable[[], str]:
    name = operand[len(LIST_REF) :]
    named = names.named_list(name)
    items: list[Any] = list(named.items)
    if not named.topic:
        return _fixed(f"{operand} = {text(items)}")
    live = names.live.of(name)
    return lambda: f"{operand} = {text(items)} + from the topic {text(sorted(live))}"
