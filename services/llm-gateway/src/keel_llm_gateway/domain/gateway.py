"""The gateway's use case: ask the provider, then account for what it cost."""

from __future__ import annotations

from collections.abc import Mapping

from keel_core.errors import InvalidArgument
from keel_llm_gateway.domain.accounting import ModelPrice, account
from keel_llm_gateway.domain.models import Completion, CompletionRequest
from keel_llm_gateway.domain.provider import Provider


class Gateway:
    """One provider today; routing, fallback and caching slot in here without touching the
    handlers."""

    def __init__(self, provider: Provider, prices: Mapping[str, ModelPrice]) -> None:
        self.provider = provider
        self._prices = dict(prices)

    async def complete(self, request: CompletionRequest) -> Completion:
        if not request.messages:
            raise InvalidArgument("a completion needs at least one message")
        completion = await self.provider.complete(request)
        return account(request, completion, self._prices)
