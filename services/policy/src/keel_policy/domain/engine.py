"""Deny-by-default evaluation: the policy set is chosen by (tenant, profile), then the first
matching rule in priority order decides.

Everything that can be decided once is decided at load: rules sorted, globs and regexes
compiled, JSON paths parsed, and each rule's verdict built. At call time the rules whose tool
pattern and profile fit a (tool, profile) pair are looked up in a small per-set cache, so a
decision only runs the argument checks of the rules that can apply.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from keel_policy.domain.matchers import CompiledConstraint
from keel_policy.domain.models import PolicyBundle, PolicySet, Rule
from keel_policy.domain.results import (
    DEFAULT_DENY_RULE,
    ConditionTrace,
    Explanation,
    Outcome,
    RuleTrace,
    Verdict,
)
from keel_policy.domain.sets import ResolvedSet, resolve

# Distinct (tool, profile) pairs remembered per set; beyond it the cache starts again, so a
# caller inventing tool names cannot grow memory without bound.
CACHE_LIMIT = 4096
NO_SET = "(none)"


def default_deny(policy_set: str) -> Verdict:
    return Verdict(
        decision="deny",
        rule_id=DEFAULT_DENY_RULE,
        reason="no rule allows this call",
        policy_set=policy_set,
    )


class CompiledRule:
    __slots__ = ("_any_profile", "_profiles", "_tool", "checks", "constraints", "rule", "verdict")

    def __init__(self, rule: Rule, set_name: str) -> None:
        self.rule = rule
        self._tool = re.compile(fnmatch.translate(rule.tool)).match
        self._any_profile = "*" in rule.profiles
        self._profiles = frozenset(rule.profiles)
        self.constraints = tuple(CompiledConstraint(c) for c in rule.when)
        self.checks = tuple(c.check for c in self.constraints)
        self.verdict = Verdict(
            decision=rule.decision,
            rule_id=rule.id,
            reason=rule.description or f"rule {rule.id} matched",
            policy_set=set_name,
        )

    def tool_fits(self, tool: str) -> bool:
        return self._tool(tool) is not None

    def profile_fits(self, profile: str) -> bool:
        return self._any_profile or profile in self._profiles


class CompiledSet:
    """One set's rules in evaluation order, ready to decide."""

    def __init__(self, name: str, rules: tuple[Rule, ...]) -> None:
        self.name = name
        ordered = sorted(enumerate(rules), key=lambda pair: (-pair[1].priority, pair[0]))
        self.rules = tuple(CompiledRule(rule, name) for _, rule in ordered)
        self.default = default_deny(name)
        self._candidates: dict[tuple[str, str], tuple[CompiledRule, ...]] = {}

    def evaluate(self, tool: str, arguments: dict[str, Any], profile: str) -> Verdict:
        candidates = self._candidates.get((tool, profile))
        if candidates is None:
            candidates = self._index(tool, profile)
        memo: dict[str, list[Any]] = {}
        for rule in candidates:
            for check in rule.checks:
                if not check(arguments, memo):
                    break
            else:
                return rule.verdict
        return self.default

    def explain(
        self, tool: str, arguments: dict[str, Any], profile: str
    ) -> tuple[Verdict, tuple[RuleTrace, ...]]:
        traces: list[RuleTrace] = []
        for compiled in self.rules:
            trace = _trace(compiled, tool, arguments, profile)
            traces.append(trace)
            if trace.matched:
                return compiled.verdict, tuple(traces)
        return self.default, tuple(traces)

    def _index(self, tool: str, profile: str) -> tuple[CompiledRule, ...]:
        candidates = tuple(r for r in self.rules if r.tool_fits(tool) and r.profile_fits(profile))
        if len(self._candidates) >= CACHE_LIMIT:
            self._candidates.clear()
        self._candidates[(tool, profile)] = candidates
        return candidates


def _trace(compiled: CompiledRule, tool: str, arguments: dict[str, Any], profile: str) -> RuleTrace:
    rule = compiled.rule

    def trace(matched: bool, reason: str, conditions: tuple[ConditionTrace, ...] = ()) -> RuleTrace:
        return RuleTrace(
            rule_id=rule.id,
            priority=rule.priority,
            tool=rule.tool,
            decision=rule.decision,
            matched=matched,
            reason=reason,
            conditions=conditions,
        )

    if not compiled.tool_fits(tool):
        return trace(False, f"tool {tool!r} does not match {rule.tool!r}")
    if not compiled.profile_fits(profile):
        return trace(False, f"profile {profile!r} is not in {list(rule.profiles)}")
    conditions = tuple(c.explain(arguments) for c in compiled.constraints)
    failed = [i for i, c in enumerate(conditions) if not c.passed]
    if failed:
        first = conditions[failed[0]]
        return trace(False, f"condition {failed[0] + 1} failed: {first.condition}", conditions)
    reason = "all conditions hold" if conditions else "tool and profile match, no conditions"
    return trace(True, reason, conditions)


class _Selected:
    __slots__ = ("active", "shadow", "tried")

    def __init__(
        self, active: CompiledSet | None, shadow: CompiledSet | None, tried: tuple[str, ...]
    ) -> None:
        self.active = active
        self.shadow = shadow
        self.tried = tried


class PolicyEngine:
    """Every policy set of one load, and the fallback order that picks one per call:
    tenant+profile, then tenant, then profile, then the set with neither."""

    def __init__(self, policy: PolicyBundle | PolicySet) -> None:
        bundle = policy if isinstance(policy, PolicyBundle) else PolicyBundle(sets=(policy,))
        self._sets: dict[tuple[str | None, str | None], tuple[CompiledSet, CompiledSet | None]]
        self._sets = {(s.tenant, s.profile): _compile_set(s) for s in resolve(bundle)}
        self.set_names = tuple(active.name for active, _ in self._sets.values())
        self.rule_count = sum(len(active.rules) for active, _ in self._sets.values())
        self._selection: dict[tuple[str, str], _Selected] = {}

    def evaluate(
        self, tool: str, arguments: dict[str, Any], profile: str = "default", tenant: str = ""
    ) -> Verdict:
        active = self._select(tenant, profile).active
        if active is None:
            return default_deny(NO_SET)
        return active.evaluate(tool, arguments, profile)

    def decide(
        self, tool: str, arguments: dict[str, Any], profile: str = "default", tenant: str = ""
    ) -> Outcome:
        """The enforced verdict and, if the selected set has one, the shadow candidate's."""
        selected = self._select(tenant, profile)
        if selected.active is None:
            return Outcome(verdict=default_deny(NO_SET))
        verdict = selected.active.evaluate(tool, arguments, profile)
        shadow = selected.shadow.evaluate(tool, arguments, profile) if selected.shadow else None
        return Outcome(verdict=verdict, shadow=shadow)

    def explain(
        self, tool: str, arguments: dict[str, Any], profile: str = "default", tenant: str = ""
    ) -> Explanation:
        selected = self._select(tenant, profile)
        if selected.active is None:
            return Explanation(verdict=default_deny(NO_SET), rules=(), selection=selected.tried)
        verdict, traces = selected.active.explain(tool, arguments, profile)
        shadow = selected.shadow.evaluate(tool, arguments, profile) if selected.shadow else None
        return Explanation(verdict=verdict, rules=traces, shadow=shadow, selection=selected.tried)

    def rules_for(self, profile: str = "", tenant: str = "") -> tuple[str, tuple[Rule, ...]]:
        """The selected set's name and its rules in evaluation order (all profiles when
        ``profile`` is empty)."""
        active = self._select(tenant, profile or "default").active
        if active is None:
            return NO_SET, ()
        rules = tuple(r.rule for r in active.rules if not profile or r.profile_fits(profile))
        return active.name, rules

    def _select(self, tenant: str, profile: str) -> _Selected:
        cached = self._selection.get((tenant, profile))
        if cached is not None:
            return cached
        tried: list[str] = []
        found: tuple[CompiledSet, CompiledSet | None] | None = None
        for key in _fallback(tenant, profile):
            tried.append(f"tenant={key[0] or '*'} profile={key[1] or '*'}")
            found = self._sets.get(key)
            if found is not None:
                break
        selected = _Selected(found[0] if found else None, found[1] if found else None, tuple(tried))
        if len(self._selection) >= CACHE_LIMIT:
            self._selection.clear()
        self._selection[(tenant, profile)] = selected
        return selected


def _fallback(tenant: str, profile: str) -> list[tuple[str | None, str | None]]:
    keys: list[tuple[str | None, str | None]] = []
    if tenant:
        keys += [(tenant, profile), (tenant, None)]
    return [*keys, (None, profile), (None, None)]


def _compile_set(resolved: ResolvedSet) -> tuple[CompiledSet, CompiledSet | None]:
    active = CompiledSet(resolved.name, resolved.rules)
    if resolved.shadow is None:
        return active, None
    return active, CompiledSet(f"{resolved.name}:shadow", resolved.shadow)
