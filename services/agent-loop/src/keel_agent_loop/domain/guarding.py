"""Output guards and escalation as the loop sees them: a verdict on a final answer, on a tool
call's arguments, or on the session's progress, from a port the service fills in
(``keel_agent_loop.guards``).

The loop knows only what each verdict means for a session; the rules (YAML, hot-reloaded), the
checks and the audit live behind ``OutputGuards`` so that the domain stays pure and a replay or
a test runs without any (``NoGuards``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from keel_agent_loop.domain.models import AgentState
from keel_contracts.chat import ToolCall

GuardVerdict = Literal["pass", "redact", "block", "require_approval"]

# How strongly a verdict stops the session; the strongest of all matching rules wins.
SEVERITY: dict[GuardVerdict, int] = {"pass": 0, "redact": 1, "require_approval": 2, "block": 3}

# The pseudo-tools a guard parks a session on, so the approval flow (request, inbox, signed
# decision bound to its arguments) is reused unchanged. Their names cannot clash with a real
# tool: tool names never contain a dot-prefixed "keel." namespace.
PUBLISH_ANSWER = "keel.publish_answer"
CONTINUE_SESSION = "keel.continue_session"
GUARD_TOOLS = frozenset({PUBLISH_ANSWER, CONTINUE_SESSION})


@dataclass(frozen=True)
class GuardHit:
    """One rule that matched, and why (for audit and ``keel guards test``)."""

    rule_id: str
    verdict: GuardVerdict
    reason: str


@dataclass(frozen=True)
class GuardDecision:
    """The outcome of the guard stage. ``text`` is what goes on: the answer, or the arguments
    JSON, with any redaction applied (unchanged when nothing was redacted)."""

    verdict: GuardVerdict
    text: str
    hits: tuple[GuardHit, ...] = field(default=())
    # An escalation's identity (``escalation_key``): once a person approved it, it is not
    # raised again, so "continue" means continue.
    key: str = ""

    @property
    def rule_id(self) -> str:
        """The rule that decided the verdict (the first of the strongest), or ""."""
        return self._decider.rule_id if self.hits else ""

    @property
    def reason(self) -> str:
        return self._decider.reason if self.hits else ""

    @property
    def _decider(self) -> GuardHit:
        return next(h for h in self.hits if h.verdict == self.verdict)


def escalation_key(session_id: str, signal: str) -> str:
    """The approval key of one escalation signal of a session (``signal`` names the instance:
    "budget", or "tool_errors@<first failing call>" so a new streak asks again)."""
    return f"{session_id}:escalation:{signal}"


def passed(text: str) -> GuardDecision:
    return GuardDecision("pass", text)


class OutputGuards(Protocol):
    """The guard stage. Implementations audit every non-pass verdict themselves."""

    async def answer(self, state: AgentState, text: str) -> GuardDecision:
        """A final answer before it is published: guard rules, then the answer's escalation
        signals (hedging, reported confidence) on what the rules let through."""

    async def tool_call(self, state: AgentState, call: ToolCall) -> GuardDecision:
        """A tool call's arguments before the call goes to the tool gateway."""

    async def progress(self, state: AgentState, offered: frozenset[str]) -> GuardDecision:
        """Before the next model call: escalation on failing tool calls, a nearly spent
        iteration budget, or calls of tools the profile does not offer (``offered``)."""


class NoGuards:
    """No guard file: every answer, call and step passes untouched."""

    async def answer(self, state: AgentState, text: str) -> GuardDecision:
        return passed(text)

    async def tool_call(self, state: AgentState, call: ToolCall) -> GuardDecision:
        return passed(call.arguments_json)

    async def progress(self, state: AgentState, offered: frozenset[str]) -> GuardDecision:
        return passed("")
