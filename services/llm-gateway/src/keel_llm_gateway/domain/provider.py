"""The port every model provider implements."""

from __future__ import annotations

from typing import Protocol

from keel_llm_gateway.domain.models import Completion, CompletionRequest


class Provider(Protocol):
    """A source of completions. Raises ``keel_core.errors`` types: ``Unavailable`` when retrying
    may help, ``InvalidArgument`` when the request can never succeed as sent."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None:
        """Release connections; called once when the service stops."""
