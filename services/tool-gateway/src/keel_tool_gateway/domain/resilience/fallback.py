"""Declared alternatives of a tool, tried when the tool's circuit breaker refuses a call.

A breaker that is open says the tool's backend is down for a while: without an alternative
the model only learns that nothing ran. A tool may name alternatives (``Tool.fallbacks``, or
for tools the gateway did not write, MCP ones, the setting ``resilience.fallbacks``); the
gateway then answers with the first one that can take the call. An alternative is a call of
its own as far as the rules go: offered to the caller's profile, its arguments valid for its
schema, its own breaker admitting calls, and a policy decision of its own (an approval of the
original does not cover it). Each alternative that reaches a decision is told to
``on_fallback`` (audited as ``tool.fallback``) before it may run: a fallback that cannot be
audited does not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from keel_tool_gateway.domain.registry import Tool, ToolRegistry
from keel_tool_gateway.domain.resilience.rules import resilience_of

AUDIT_ACTION = "tool.fallback"


@dataclass(frozen=True)
class FallbackEvent:
    """One alternative tried for a refused call: ``decision`` is the alternative's policy
    decision (``allow``, ``deny``, ``require_approval``); ``reason`` why the original did not
    run (the breaker's refusal)."""

    from_tool: str
    to_tool: str
    reason: str
    decision: str
    idempotency_key: str
    session_id: str
    trace: str

    def details(self) -> dict[str, str]:
        return {
            "from": self.from_tool,
            "to": self.to_tool,
            "reason": self.reason,
            "decision": self.decision,
            "idempotency_key": self.idempotency_key,
        }


# Told of each alternative tried; raises when the event cannot be recorded (the alternative
# then does not run). The service wires it to its audit.
FallbackNoted = Callable[[FallbackEvent], Coroutine[Any, Any, None]]


class _Breaker(Protocol):
    def reopens_in(self) -> float: ...


@runtime_checkable
class BreakerView(Protocol):
    """A resilience layer whose breakers can be read without a call
    (``adapters.resilience.Resilience``); one without it (``SingleAttempt``) has no breakers,
    so every alternative counts as admitted."""

    def breakers(self) -> Mapping[str, _Breaker]: ...


class Fallbacks:
    """Which alternatives a tool has and which of them may be tried now.

    ``configured`` (tool name -> alternatives, in order) replaces a tool's own declaration;
    ``on_fallback`` records each alternative tried.
    """

    def __init__(
        self,
        configured: Mapping[str, Sequence[str]] | None = None,
        *,
        on_fallback: FallbackNoted,
    ) -> None:
        self._configured = {name: tuple(alts) for name, alts in (configured or {}).items()}
        self.on_fallback = on_fallback

    def declared(self, tool: Tool[Any]) -> tuple[str, ...]:
        configured = self._configured.get(tool.name)
        return configured if configured is not None else tool.fallbacks

    def candidates(
        self, tool: Tool[Any], registry: ToolRegistry, profile: str, breakers: object
    ) -> Iterator[Tool[Any]]:
        """The alternatives worth a policy decision, in declared order: registered, offered
        to ``profile`` (a fallback must not reach past the catalog), not the tool itself, and
        not behind a breaker that is open (``breakers``: the resilience layer)."""
        for name in self.declared(tool):
            alt = registry.get(name)
            if alt is None or alt.name == tool.name or not registry.offered_to(profile, name):
                continue
            if _is_open(breakers, alt):
                continue
            yield alt


def _is_open(breakers: object, tool: Tool[Any]) -> bool:
    if not isinstance(breakers, BreakerView):
        return False
    breaker = breakers.breakers().get(resilience_of(tool).dependency or tool.name)
    return breaker is not None and breaker.reopens_in() > 0


def told(original: str, alternative: str, *, ran: bool) -> str:
    """What the model is told about the answer it got: who answered, or which alternative
    was tried and did not run (denied, or waiting for a person)."""
    unavailable = f"{original} is unavailable (circuit open)"
    if ran:
        return f"{unavailable}; answered by {alternative}"
    return f"{unavailable}; its alternative {alternative} did not run"
