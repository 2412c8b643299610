"""Deny-by-default evaluation: the first matching rule in priority order decides."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from keel_policy.domain.models import ArgConstraint, PolicySet, Rule, Verdict

DEFAULT_DENY = Verdict(decision="deny", rule_id="default-deny", reason="no rule allows this call")

_MISSING = object()


class PolicyEngine:
    def __init__(self, policy: PolicySet) -> None:
        ordered = sorted(enumerate(policy.rules), key=lambda pair: (-pair[1].priority, pair[0]))
        self.rules: list[Rule] = [rule for _, rule in ordered]
        self._matchers = [_compile(rule) for rule in self.rules]

    def evaluate(self, tool: str, arguments: dict[str, Any], profile: str = "default") -> Verdict:
        for rule, matches in zip(self.rules, self._matchers, strict=True):
            if matches(tool, arguments, profile):
                reason = rule.description or f"rule {rule.id} matched {tool}"
                return Verdict(decision=rule.decision, rule_id=rule.id, reason=reason)
        return DEFAULT_DENY


Matcher = Callable[[str, dict[str, Any], str], bool]


def _compile(rule: Rule) -> Matcher:
    tool_re = re.compile(fnmatch.translate(rule.tool))
    any_profile = "*" in rule.profiles
    profiles = frozenset(rule.profiles)
    checks = [_compile_constraint(c) for c in rule.when]

    def matches(tool: str, arguments: dict[str, Any], profile: str) -> bool:
        if not tool_re.match(tool):
            return False
        if not any_profile and profile not in profiles:
            return False
        return all(check(arguments) for check in checks)

    return matches


def _compile_constraint(constraint: ArgConstraint) -> Callable[[dict[str, Any]], bool]:
    keys = constraint.path.split(".")
    pattern = re.compile(constraint.regex) if constraint.regex is not None else None

    def check(arguments: dict[str, Any]) -> bool:
        value: Any = arguments
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        if constraint.equals is not None and value != constraint.equals:
            return False
        if pattern is not None and not pattern.search(str(value)):
            return False
        return _in_range(value, constraint.min, constraint.max)

    return check


def _in_range(value: Any, low: float | None, high: float | None) -> bool:
    if low is None and high is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (low is None or value >= low) and (high is None or value <= high)
