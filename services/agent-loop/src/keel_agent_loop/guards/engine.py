"""The guard engine: rules and escalation signals evaluated against an answer, a tool call or
a session's history. Pure and synchronous, so ``keel guards test`` explains exactly what the
service decides, and ``make bench`` measures it (µs per decision).

Every matching rule is a hit; the strongest verdict wins (block > require_approval > redact >
pass) and every redaction is applied, so the order of rules never lets a secret through.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema

from keel_agent_loop.domain.guarding import (
    SEVERITY,
    GuardDecision,
    GuardHit,
    GuardVerdict,
    escalation_key,
    passed,
)
from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.domain.prompts import approval_of
from keel_agent_loop.guards.models import EscalationRules, GuardRule, GuardsDocument
from keel_contracts.chat import ToolCall

REDACTED = "[redacted]"


class _Compiled:
    """One rule with its patterns compiled once."""

    def __init__(self, rule: GuardRule) -> None:
        self.rule = rule
        self.regex = re.compile(rule.regex) if rule.regex else None
        self.terms = re.compile("|".join(re.escape(t) for t in rule.deny_terms), re.IGNORECASE)
        self.validator = (
            jsonschema.Draft202012Validator(rule.json_schema) if rule.json_schema else None
        )

    def applies_to_tool(self, name: str) -> bool:
        return not self.rule.on_answer and fnmatch.fnmatchcase(name, self.rule.match)

    def why(self, strings: Iterable[str], whole: str, structured: Any) -> str | None:
        """Why the rule trips on this input, or None. ``strings``: the texts to search,
        ``whole``: the text measured, ``structured``: the parsed JSON (or ``_NOT_JSON``)."""
        rule = self.rule
        texts = list(strings)
        if self.regex is not None and any(self.regex.search(t) for t in texts):
            return rule.reason or f"matches /{rule.regex}/"
        if rule.deny_terms:
            for text in texts:
                if found := self.terms.search(text):
                    return rule.reason or f"contains the denied term {found.group(0)!r}"
        if rule.max_length and len(whole) > rule.max_length:
            return rule.reason or f"{len(whole)} characters, more than {rule.max_length}"
        if self.validator is not None:
            if structured is _NOT_JSON:
                return rule.reason or "not JSON, but the rule expects a structured answer"
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(structured))
            if error is not None:
                return rule.reason or f"does not match the schema: {error.message}"
        return None

    def redact(self, text: str) -> str:
        if self.regex is not None:
            text = self.regex.sub(REDACTED, text)
        if self.rule.deny_terms:
            text = self.terms.sub(REDACTED, text)
        return text


_NOT_JSON = object()
# What a JSON text can start with (after white space).
_JSON_START = frozenset('{["-0123456789tfn')


class GuardEngine:
    def __init__(self, document: GuardsDocument) -> None:
        self.document = document
        self._answer = [_Compiled(r) for r in document.rules if r.on_answer]
        self._tools = [_Compiled(r) for r in document.rules if not r.on_answer]
        confidence = document.escalation.confidence
        # "confidence: 0.4" in prose; compiled once, as every pattern here.
        self._confidence = (
            re.compile(rf"(?i)\b{re.escape(confidence.field)}\s*[:=]\s*([0-9]*\.?[0-9]+)")
            if confidence is not None
            else None
        )

    @property
    def escalation(self) -> EscalationRules:
        return self.document.escalation

    @property
    def rule_count(self) -> int:
        return len(self.document.rules)

    def check_answer(self, text: str) -> GuardDecision:
        """Guard rules on a final answer, then (on what they let through) hedging and a
        reported confidence."""
        structured = _parse(text)
        hits = [
            GuardHit(c.rule.id, c.rule.verdict, why)
            for c in self._answer
            if (why := c.why([text], text, structured)) is not None
        ]
        redactors = [c for c in self._answer if c.rule.verdict == "redact"]
        decision = _decide(hits, text, lambda t: _apply(redactors, hits, t))
        if decision.verdict in ("pass", "redact"):
            signal = self._answer_signal(decision.text, _parse(decision.text))
            if signal is not None:
                return GuardDecision("require_approval", decision.text, (*hits, signal))
        return decision

    def check_tool(self, call: ToolCall) -> GuardDecision:
        """Guard rules on a call's arguments: searched in every string value, measured as the
        JSON text, validated as the parsed object; a redaction rewrites the string values
        (the arguments stay valid JSON)."""
        rules = [c for c in self._tools if c.applies_to_tool(call.name)]
        if not rules:
            return passed(call.arguments_json)
        structured = _parse(call.arguments_json)
        strings = (
            list(_strings(structured)) if structured is not _NOT_JSON else [call.arguments_json]
        )
        hits = [
            GuardHit(c.rule.id, c.rule.verdict, why)
            for c in rules
            if (why := c.why(strings, call.arguments_json, structured)) is not None
        ]
        redactors = [c for c in rules if c.rule.verdict == "redact"]

        def rewrite(text: str) -> str:
            if structured is _NOT_JSON:
                return _apply(redactors, hits, text)
            cleaned = _map_strings(structured, lambda s: _apply(redactors, hits, s))
            return json.dumps(cleaned, ensure_ascii=False)

        return _decide(hits, call.arguments_json, rewrite)

    def check_progress(self, state: AgentState, offered: frozenset[str]) -> GuardDecision:
        """The escalation signals of a session about to think again. A signal a person has
        approved already (its ``escalation_key`` in the decided approvals) is not raised
        again."""
        rules = self.escalation
        for signal, reason in _progress_signals(rules, state, offered):
            key = escalation_key(state.session_id, signal)
            if not approval_of(state.decided_approvals, key):
                hit = GuardHit(f"escalation.{signal.split('@')[0]}", "require_approval", reason)
                return GuardDecision("require_approval", "", (hit,), key=key)
        return passed("")

    def _answer_signal(self, text: str, structured: Any) -> GuardHit | None:
        rules = self.escalation
        lowered = text.lower()
        for phrase in rules.hedging:
            if phrase in lowered:
                return GuardHit("escalation.hedging", "require_approval", f"hedges: {phrase!r}")
        if rules.confidence is not None and self._confidence is not None:
            confidence = _confidence(text, structured, rules.confidence.field, self._confidence)
            if confidence is not None and confidence < rules.confidence.below:
                reason = (
                    f"reported {rules.confidence.field} {confidence} < {rules.confidence.below}"
                )
                return GuardHit("escalation.confidence", "require_approval", reason)
        return None


def _decide(hits: list[GuardHit], text: str, redact: Callable[[str], str]) -> GuardDecision:
    if not hits:
        return passed(text)
    verdict: GuardVerdict = max((h.verdict for h in hits), key=SEVERITY.__getitem__)
    if any(h.verdict == "redact" for h in hits):
        text = redact(text)
    return GuardDecision(verdict, text, tuple(hits))


def _apply(redactors: list[_Compiled], hits: list[GuardHit], text: str) -> str:
    fired = {h.rule_id for h in hits}
    for compiled in redactors:
        if compiled.rule.id in fired:
            text = compiled.redact(text)
    return text


def _progress_signals(
    rules: EscalationRules, state: AgentState, offered: frozenset[str]
) -> Iterable[tuple[str, str]]:
    if rules.tool_errors is not None:
        streak, first = _error_streak(state)
        if streak >= rules.tool_errors:
            yield f"tool_errors@{first}", f"{streak} tool calls in a row failed"
    if rules.budget_percent is not None and state.iteration > 0:
        used = 100.0 * state.iteration / state.max_iterations
        if used >= rules.budget_percent:
            yield (
                "budget",
                (
                    f"{state.iteration} of {state.max_iterations} iterations used "
                    f"(escalates at {rules.budget_percent:g}%)"
                ),
            )
    if rules.out_of_profile is not None:
        unknown = [
            call.name
            for message in state.messages
            if message.role == "assistant"
            for call in message.tool_calls
            if call.name not in offered
        ]
        if len(unknown) >= rules.out_of_profile:
            names = ", ".join(sorted(set(unknown)))
            yield (
                "out_of_profile",
                (
                    f"{len(unknown)} calls of tools the profile {state.agent_profile!r} does not "
                    f"offer ({names}): the task may be outside what it is for"
                ),
            )


def _error_streak(state: AgentState) -> tuple[int, int]:
    """How many of the latest tool results failed in a row, and the index of the first."""
    streak, first = 0, -1
    for index in range(len(state.messages) - 1, -1, -1):
        message = state.messages[index]
        if message.role != "tool":
            continue
        if not message.content.startswith("ERROR"):
            break
        streak, first = streak + 1, index
    return streak, first


def _confidence(text: str, structured: Any, field: str, pattern: re.Pattern[str]) -> float | None:
    value: Any = None
    if isinstance(structured, dict):
        value = structured.get(field)
    else:
        found = pattern.search(text)
        value = found.group(1) if found else None
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _parse(text: str) -> Any:
    stripped = text.lstrip()
    if not stripped or stripped[0] not in _JSON_START:
        # Prose, the usual answer: not worth a json.loads that fails.
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    return value
