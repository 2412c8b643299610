"""The port every model provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from keel_llm_gateway.domain.models import Completion, CompletionRequest, StreamEvent


class Provider(Protocol):
    """A source of completions. Raises ``keel_contracts.errors`` types: ``Unavailable`` or
    ``DeadlineExceeded`` when another provider (or a later try) may succeed, so the gateway
    falls back; ``InvalidArgument`` when the request can never succeed as sent, so it does
    not."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Zero or more ``TextDelta`` then exactly one ``Completion`` (the whole answer, as
        ``complete`` would return it). An async generator in every implementation."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the service stops."""
