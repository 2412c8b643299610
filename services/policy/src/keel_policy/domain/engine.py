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
import time
from collections.abc import Callable
from typing import Any

from keel_policy.domain.compiler import Node, charge_amount, compile_condition
from keel_policy.domain.models import PolicyBundle, PolicySet, Rule
from keel_policy.domain.names import LiveLists, Names
from keel_policy.domain.provenance import Finding
from keel_policy.domain.results import (
    DEFAULT_DENY_RULE,
    ConditionTrace,
    Explanation,
    Outcome,
    RuleTrace,
    Verdict,
)
from keel_policy.domain.scope import Scope
from keel_policy.domain.sets import ResolvedSet, resolve
from keel_policy.domain.state import PERS, Charge, Meter, StateLedger, StateView
from keel_policy.errors import PolicyFileError

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

    def __init__(self, rule: Rule, set_name: str, names: Names) -> None:
        self.rule = rule
        self._tool = re.compile(fnmatch.translate(rule.tool)).match
        self._any_profile = "*" in rule.profiles
        self._profiles = frozenset(rule.profiles)
        try:
            self.constraints: tuple[Node, ...] = tuple(
                compile_condition(c, names) for c in rule.when
            )
        except (PolicyFileError, ValueError) as exc:
            raise PolicyFileError(f"set {set_name!r} rule {rule.id!r}: {exc}") from exc
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

    def __init__(self, name: str, rules: tuple[Rule, ...], names: Names) -> None:
        self.name = name
        ordered = sorted(enumerate(rules), key=lambda pair: (-pair[1].priority, pair[0]))
        self.rules = tuple(CompiledRule(rule, name, names) for _, rule in ordered)
        self.default = default_deny(name)
        self._candidates: dict[tuple[str, str], tuple[CompiledRule, ...]] = {}

    def evaluate(self, scope: Scope, profile: str) -> Verdict:
        tool = scope.tool
        candidates = self._candidates.get((tool, profile))
        if candidates is None:
            candidates = self._index(tool, profile)
        for rule in candidates:
            for check in rule.checks:
                if not check(scope):
                    break
            else:
                return rule.verdict
        return self.default

    def explain(self, scope: Scope, profile: str) -> tuple[Verdict, tuple[RuleTrace, ...]]:
        traces: list[RuleTrace] = []
        for compiled in self.rules:
            trace = _trace(compiled, scope, profile)
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


def _trace(compiled: CompiledRule, scope: Scope, profile: str) -> RuleTrace:
    rule = compiled.rule
    tool = scope.tool

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
    conditions = tuple(c.explain(scope) for c in compiled.constraints)
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
    tenant+profile, then tenant, then profile, then the set with neither.

    ``live`` (the items of topic-backed lists) and ``state`` (running totals) outlive a
    reload: the service passes the same ones to every engine it builds. ``clock`` gives the
    decision's time (epoch seconds) for ``now`` and state windows.
    """

    def __init__(
        self,
        policy: PolicyBundle | PolicySet,
        *,
        live: LiveLists | None = None,
        state: StateView | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bundle = policy if isinstance(policy, PolicyBundle) else PolicyBundle(sets=(policy,))
        self.names = Names(
            lists=bundle.lists,
            vars=bundle.vars,
            live=live or LiveLists(),
            state=state if state is not None else StateLedger(),
        )
        self._clock = clock
        # The files the lists and variables were read from (a reload watches them).
        self.files = bundle.files
        self._sets: dict[tuple[str | None, str | None], tuple[CompiledSet, CompiledSet | None]]
        self._sets = {(s.tenant, s.profile): _compile_set(s, self.names) for s in resolve(bundle)}
        self.set_names = tuple(active.name for active, _ in self._sets.values())
        self.rule_count = sum(len(active.rules) for active, _ in self._sets.values())
        self._selection: dict[tuple[str, str], _Selected] = {}
        # Every meter a state condition reads, with what one call adds to it.
        self.meters: tuple[Meter, ...] = tuple(self.names.meters.values())
        self._amounts = tuple((m, charge_amount(m)) for m in self.meters)

    def now(self) -> float:
        """The engine's clock: epoch seconds."""
        return self._clock()

    def scope(
        self,
        tool: str,
        arguments: dict[str, Any],
        tenant: str = "",
        *,
        session_id: str = "",
        agent_id: str = "",
        now: float | None = None,
        call_id: str = "",
        provenance: tuple[Finding, ...] = (),
    ) -> Scope:
        return Scope(
            arguments,
            tool=tool,
            tenant=tenant,
            session_id=session_id,
            agent_id=agent_id,
            now=self._clock() if now is None else now,
            call_id=call_id,
            provenance=provenance,
        )

    def evaluate(
        self,
        tool: str,
        arguments: dict[str, Any],
        profile: str = "default",
        tenant: str = "",
        *,
        session_id: str = "",
        agent_id: str = "",
        now: float | None = None,
        call_id: str = "",
        provenance: tuple[Finding, ...] = (),
    ) -> Verdict:
        active = self._select(tenant, profile).active
        if active is None:
            return default_deny(NO_SET)
        scope = self.scope(
            tool,
            arguments,
            tenant,
            session_id=session_id,
            agent_id=agent_id,
            now=now,
            call_id=call_id,
            provenance=provenance,
        )
        return active.evaluate(scope, profile)

    def decide(
        self,
        tool: str,
        arguments: dict[str, Any],
        profile: str = "default",
        tenant: str = "",
        *,
        session_id: str = "",
        agent_id: str = "",
        now: float | None = None,
        call_id: str = "",
        provenance: tuple[Finding, ...] = (),
    ) -> Outcome:
        """The enforced verdict, the shadow candidate's (if the selected set has one), and
        what the call adds to running totals if it goes ahead (``charges``)."""
        selected = self._select(tenant, profile)
        if selected.active is None:
            return Outcome(verdict=default_deny(NO_SET))
        scope = self.scope(
            tool,
            arguments,
            tenant,
            session_id=session_id,
            agent_id=agent_id,
            now=now,
            call_id=call_id,
            provenance=provenance,
        )
        verdict = selected.active.evaluate(scope, profile)
        shadow = selected.shadow.evaluate(scope, profile) if selected.shadow else None
        if not self._amounts or verdict.decision == "deny":
            return Outcome(verdict=verdict, shadow=shadow)
        return Outcome(verdict=verdict, shadow=shadow, charges=self.charges(scope))

    def charges(self, scope: Scope) -> tuple[Charge, ...]:
        """What a call adds to every meter that counts its tool, under each of the caller's
        keys (session, tenant, agent): any state condition may read any of them."""
        found: list[Charge] = []
        for meter, amount in self._amounts:
            if not meter.fits(scope.tool):
                continue
            value = amount(scope)
            if value:
                found += [Charge(meter.id, f"{per}:{scope.per(per)}", value) for per in PERS]
        return tuple(found)

    def explain(
        self,
        tool: str,
        arguments: dict[str, Any],
        profile: str = "default",
        tenant: str = "",
        *,
        session_id: str = "",
        agent_id: str = "",
        now: float | None = None,
        call_id: str = "",
        provenance: tuple[Finding, ...] = (),
    ) -> Explanation:
        selected = self._select(tenant, profile)
        if selected.active is None:
            return Explanation(verdict=default_deny(NO_SET), rules=(), selection=selected.tried)
        scope = self.scope(
            tool,
            arguments,
            tenant,
            session_id=session_id,
            agent_id=agent_id,
            now=now,
            call_id=call_id,
            provenance=provenance,
        )
        verdict, traces = selected.active.explain(scope, profile)
        shadow = selected.shadow.evaluate(scope, profile) if selected.shadow else None
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


def _compile_set(resolved: ResolvedSet, names: Names) -> tuple[CompiledSet, CompiledSet | None]:
    active = CompiledSet(resolved.name, resolved.rules, names)
    if resolved.shadow is None:
        return active, None
    return active, CompiledSet(f"{resolved.name}:shadow", resolved.shadow, names)
