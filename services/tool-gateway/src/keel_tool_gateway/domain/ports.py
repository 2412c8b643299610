"""What the domain needs from the outside, as protocols: adapters and fakes implement them."""

from __future__ import annotations

from typing import Any, Protocol

from keel_tool_gateway.domain.models import PolicyVerdict, RequestContext


class PolicyPort(Protocol):
    async def evaluate(
        self, ctx: RequestContext, tool: str, arguments: dict[str, Any]
    ) -> PolicyVerdict:
        """The policy's verdict on one call. Raises when no verdict can be had: the caller
        then fails closed."""
        ...
