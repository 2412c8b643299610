"""What one decision's conditions see: the arguments, who calls, when, and a memo.

Built once per evaluation (a few slots), so a condition that needs the caller (state), the time
(``now``) or another argument reads it here instead of every closure taking more parameters.
``provenance`` holds what the caller found about where the arguments' text came from.
"""

from __future__ import annotations

from typing import Any

from keel_policy.domain.provenance import Finding


class Scope:
    __slots__ = (
        "agent_id",
        "arguments",
        "call_id",
        "memo",
        "now",
        "provenance",
        "session_id",
        "tenant",
        "tool",
    )

    def __init__(
        self,
        arguments: Any,
        *,
        tool: str = "",
        tenant: str = "",
        session_id: str = "",
        agent_id: str = "",
        now: float = 0.0,
        call_id: str = "",
        provenance: tuple[Finding, ...] = (),
    ) -> None:
        self.arguments = arguments
        # Values selected by multi-value paths, by path: shared by every rule of one decision.
        self.memo: dict[str, list[Any]] = {}
        self.tool = tool
        self.tenant = tenant
        self.session_id = session_id
        self.agent_id = agent_id
        # Seconds since the epoch (UTC) at the decision.
        self.now = now
        # The call's idempotency key ("" when none): its own reservation, if a re-send of it
        # is decided again, is not counted twice.
        self.call_id = call_id
        # Spans of the arguments found in untrusted tool output (paths from the root).
        self.provenance = provenance

    def within(self, value: Any) -> Scope:
        """The same caller and time, with ``value`` as the root (conditions under ``where``)."""
        inner = Scope(
            value,
            tool=self.tool,
            tenant=self.tenant,
            session_id=self.session_id,
            agent_id=self.agent_id,
            now=self.now,
            call_id=self.call_id,
            provenance=self.provenance,
        )
        return inner

    def per(self, kind: str) -> str:
        """The key a running total is kept under: the caller's session, tenant or agent."""
        if kind == "tenant":
            return self.tenant or "default"
        if kind == "agent":
            return self.agent_id
        return self.session_id
