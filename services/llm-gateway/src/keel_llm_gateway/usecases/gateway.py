"""The gateway's use case: route, look in the cache, reserve budget, call along the chain,
check the answer, account for it, settle, remember it.

Handlers call ``complete`` or ``stream``; everything here is pure asyncio and ports
(providers, breakers, observer), so it is tested without gRPC or HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from keel_contracts.errors import InvalidArgument
from keel_core.resilience.breaker import CircuitBreaker
from keel_llm_gateway.domain.accounting import (
    ModelPrice,
    account,
    cost_usd,
    estimate_prompt_tokens,
    price_for,
)
from keel_llm_gateway.domain.budgets import (
    BudgetExceeded,
    BudgetLedger,
    Budgets,
    LocalBudgets,
    Reservation,
    Spend,
)
from keel_llm_gateway.domain.cache import CacheResult, ResponseCache, cache_key, cacheable
from keel_llm_gateway.domain.models import Completion, CompletionRequest, StreamEvent, Usage
from keel_llm_gateway.domain.output_parsing import MalformedOutput
from keel_llm_gateway.domain.provider import Provider
from keel_llm_gateway.domain.repair import checked, retry_request
from keel_llm_gateway.domain.routing import Route, Router, Target
from keel_llm_gateway.domain.streaming import replay
from keel_llm_gateway.usecases.fallback import ChainCaller
from keel_llm_gateway.usecases.observer import GatewayObserver, NullObserver


@dataclass(frozen=True)
class GatewayOptions:
    # Completion tokens reserved against budgets when a request sets no max_tokens.
    completion_reserve_tokens: int = 1024
    # Check answers against the request's tools and retry once when malformed...
    repair: bool = True
    # ...from these providers only (None: all). A script's answers must reach the loop as
    # written, and a provider that parses and retries itself (local) needs no second pass.
    repair_providers: frozenset[str] | None = None


class Gateway:
    def __init__(
        self,
        *,
        router: Router,
        chain: ChainCaller,
        prices: Mapping[str, ModelPrice],
        cache: ResponseCache | None = None,
        ledger: BudgetLedger | None = None,
        observer: GatewayObserver | None = None,
        options: GatewayOptions | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        """``budgets``: where reservations go (a ledger shared by replicas); unset, this
        process's ``ledger``."""
        self._router = router
        self._chain = chain
        self._prices = dict(prices)
        self._cache = cache
        self._ledger = ledger or BudgetLedger()
        self._budgets: Budgets = budgets or LocalBudgets(self._ledger)
        self._observer = observer or NullObserver()
        self._options = options or GatewayOptions()

    @classmethod
    def single(
        cls,
        provider: Provider,
        prices: Mapping[str, ModelPrice],
        *,
        cache: ResponseCache | None = None,
        observer: GatewayObserver | None = None,
    ) -> Gateway:
        """One provider for every tier, a breaker that never opens: tests and benchmarks."""
        observer = observer or NullObserver()
        breaker = CircuitBreaker(
            provider.name, failure_threshold=2**31, reset_timeout_s=1.0, observer=observer
        )
        return cls(
            router=Router.single(Target(provider=provider.name)),
            chain=ChainCaller({provider.name: provider}, {provider.name: breaker}, observer),
            prices=prices,
            cache=cache,
            observer=observer,
        )

    @property
    def ledger(self) -> BudgetLedger:
        """This process's ledger (the one in use unless ``budgets`` was given)."""
        return self._ledger

    @property
    def budgets(self) -> Budgets:
        return self._budgets

    async def complete(self, request: CompletionRequest) -> Completion:
        route, prompt = self._route(request)
        key = self._cache_key(request, route)
        hit = self._lookup(key)
        if hit is not None:
            return hit
        reservation = await self._reserve(request, route, prompt)
        try:
            first = await self._chain.complete(route.chain, request)
            completion = await self._checked(route, request, first, prompt)
        except BaseException:
            self._budgets.release(reservation)
            raise
        return await self._finish(request, reservation, key, completion)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Deltas as the provider produces them, then the whole completion; a cache hit is
        replayed in a few deltas. If the answer needs a retry to be usable, the final
        completion carries the corrected answer (deltas are progress, the final is the truth)."""
        route, prompt = self._route(request)
        key = self._cache_key(request, route)
        hit = self._lookup(key)
        if hit is not None:
            async for event in replay(hit):
                yield event
            return
        reservation = await self._reserve(request, route, prompt)
        try:
            final: Completion | None = None
            async for event in self._chain.stream(route.chain, request):
                if isinstance(event, Completion):
                    final = event
                else:
                    yield event
            if final is None:
                raise AssertionError("a chain stream always ends with a completion")
            completion = await self._checked(route, request, final, prompt)
        except BaseException:
            self._budgets.release(reservation)
            raise
        yield await self._finish(request, reservation, key, completion)

    def _route(self, request: CompletionRequest) -> tuple[Route, int]:
        """The route and the prompt estimate (made once: routing, budgets and accounting all
        use it)."""
        if not request.messages:
            raise InvalidArgument("a completion needs at least one message")
        prompt = estimate_prompt_tokens(request)
        return self._router.route(request, prompt), prompt

    def _cache_key(self, request: CompletionRequest, route: Route) -> str | None:
        if self._cache is None or not cacheable(request):
            self._observer.cache(CacheResult.BYPASS)
            return None
        return cache_key(request, route.cache_model)

    def _lookup(self, key: str | None) -> Completion | None:
        if key is None or self._cache is None:
            return None
        hit = self._cache.get(key)
        self._observer.cache(CacheResult.HIT if hit is not None else CacheResult.MISS)
        return hit

    async def _reserve(self, request: CompletionRequest, route: Route, prompt: int) -> Reservation:
        """An upper estimate: the prompt estimate plus the completion limit, priced at the
        dearest model the chain may fall back to."""
        generated = request.max_tokens or self._options.completion_reserve_tokens
        usage = Usage(prompt_tokens=prompt, completion_tokens=generated)
        cost = max(cost_usd(usage, price_for(t.model, self._prices)) for t in route.chain)
        try:
            return await self._budgets.reserve(request.scope, Spend(prompt + generated, cost))
        except BudgetExceeded as exc:
            self._observer.budget_rejected(exc.kind)
            raise

    async def _checked(
        self, route: Route, request: CompletionRequest, raw: Completion, prompt: int
    ) -> Completion:
        """Accounted, and usable: a malformed answer is asked for once more with the reason;
        a second bad answer is returned as it is (the tool gateway validates before running)."""
        first = account(request, raw, self._prices, prompt)
        only = self._options.repair_providers
        if not self._options.repair or (only is not None and raw.provider not in only):
            return first
        try:
            return checked(first, request)
        except MalformedOutput as exc:
            error = exc
        self._observer.repair("retried")
        retry = retry_request(request, first, error)
        second = account(retry, await self._chain.complete(route.chain, retry), self._prices)
        try:
            answer = checked(second, request)
            self._observer.repair("fixed")
        except MalformedOutput:
            answer = second
            self._observer.repair("failed")
        return answer.model_copy(update={"usage": _sum(first.usage, second.usage)})

    async def _finish(
        self,
        request: CompletionRequest,
        reservation: Reservation,
        key: str | None,
        completion: Completion,
    ) -> Completion:
        usage = completion.usage or Usage(prompt_tokens=0, completion_tokens=0)
        spend = Spend(usage.prompt_tokens + usage.completion_tokens, usage.cost_usd)
        await self._budgets.settle(reservation, spend)
        self._observer.spent(request.scope.tenant, spend)
        if key is not None and self._cache is not None:
            self._cache.put(key, completion)
        return completion


def _sum(first: Usage | None, second: Usage | None) -> Usage | None:
    if first is None or second is None:
        return second or first
    return Usage(
        prompt_tokens=first.prompt_tokens + second.prompt_tokens,
        completion_tokens=first.completion_tokens + second.completion_tokens,
        cost_usd=first.cost_usd + second.cost_usd,
        estimated=first.estimated or second.estimated,
    )
