"""Walking a chain of targets: each provider behind its circuit breaker and a time limit, the
next one tried when the current one is down, slow or refusing for now.

Falls back on ``Unavailable`` (providers map 5xx, 429, refused connections to it),
``DeadlineExceeded`` and the attempt time-out; never on ``InvalidArgument`` or anything else,
which would fail the same way everywhere (and a bad request is no sign a provider is unwell,
so it does not count against the breaker either). A stream falls back only until its first
token went out: after that the caller has seen part of an answer, and a different model's
continuation would not fit it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from keel_contracts.errors import DeadlineExceeded, Unavailable
from keel_core.resilience.breaker import CircuitBreaker, CircuitOpen
from keel_llm_gateway.domain.models import Completion, CompletionRequest, StreamEvent
from keel_llm_gateway.domain.provider import Provider
from keel_llm_gateway.domain.routing import Target
from keel_llm_gateway.usecases.observer import GatewayObserver


def should_fall_back(exc: BaseException) -> bool:
    return isinstance(exc, Unavailable | DeadlineExceeded | TimeoutError)


def _counts_against_breaker(exc: Exception) -> bool:
    return should_fall_back(exc) and not isinstance(exc, CircuitOpen)


class AllTargetsFailed(Unavailable):
    """Every target of the chain failed or was skipped; the message lists why, in order."""


class ChainCaller:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        breakers: Mapping[str, CircuitBreaker],
        observer: GatewayObserver,
        attempt_timeout_s: float | None = None,
    ) -> None:
        unknown = set(breakers) ^ set(providers)
        if unknown:
            raise ValueError(f"providers and breakers differ: {sorted(unknown)}")
        self._providers = dict(providers)
        self._breakers = dict(breakers)
        self._observer = observer
        self._timeout_s = attempt_timeout_s

    async def complete(self, chain: Sequence[Target], request: CompletionRequest) -> Completion:
        failures: list[str] = []
        for target in chain:
            try:
                return await self._attempt(target, request)
            except Exception as exc:
                if not should_fall_back(exc):
                    raise
                self._failed(target, exc, failures)
        raise AllTargetsFailed(_summary(failures))

    async def stream(
        self, chain: Sequence[Target], request: CompletionRequest
    ) -> AsyncIterator[StreamEvent]:
        """Deltas, then one ``Completion``, from the first target that starts answering."""
        failures: list[str] = []
        for target in chain:
            started = False
            try:
                async for event in self._stream_attempt(target, request):
                    started = True
                    yield event
                return
            except Exception as exc:
                if started or not should_fall_back(exc):
                    raise
                self._failed(target, exc, failures)
        raise AllTargetsFailed(_summary(failures))

    async def _attempt(self, target: Target, request: CompletionRequest) -> Completion:
        provider = self._providers[target.provider]
        routed = _routed(request, target)
        started = time.perf_counter()
        outcome = "ok"
        try:
            with self._breakers[target.provider].guard(_counts_against_breaker):
                async with asyncio.timeout(self._timeout_s):
                    return _stamped(await provider.complete(routed), target)
        except TimeoutError as exc:
            outcome = "DeadlineExceeded"
            raise DeadlineExceeded(
                f"{target.label} did not answer within {self._timeout_s:g}s"
            ) from exc
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._observer.attempt(target.provider, outcome, time.perf_counter() - started)

    async def _stream_attempt(
        self, target: Target, request: CompletionRequest
    ) -> AsyncIterator[StreamEvent]:
        """One provider's stream; the time limit applies to each wait for the next event (a
        stream may run long as long as it keeps talking)."""
        provider = self._providers[target.provider]
        events = provider.stream(_routed(request, target))
        started = time.perf_counter()
        outcome = "ok"
        try:
            with self._breakers[target.provider].guard(_counts_against_breaker):
                while True:
                    try:
                        async with asyncio.timeout(self._timeout_s):
                            event = await anext(events)
                    except StopAsyncIteration:
                        raise Unavailable(
                            f"{target.label} ended its stream without a completion"
                        ) from None
                    except TimeoutError as exc:
                        raise DeadlineExceeded(
                            f"{target.label} sent nothing for {self._timeout_s:g}s"
                        ) from exc
                    if isinstance(event, Completion):
                        yield _stamped(event, target)
                        return
                    yield event
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._observer.attempt(target.provider, outcome, time.perf_counter() - started)
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    def _failed(self, target: Target, exc: Exception, failures: list[str]) -> None:
        reason = "CircuitOpen" if isinstance(exc, CircuitOpen) else type(exc).__name__
        failures.append(f"{target.label}: {exc}")
        self._observer.fallback(target.provider, reason)


def _routed(request: CompletionRequest, target: Target) -> CompletionRequest:
    """The request as the target's provider gets it: naming the target's model (the request
    itself when it already does: models are frozen, a copy would be an equal one)."""
    if request.model == target.model:
        return request
    return request.model_copy(update={"model": target.model})


def _stamped(completion: Completion, target: Target) -> Completion:
    """Named after the configured provider that answered (two OpenAI-compatible endpoints are
    two providers), so audit, metrics and per-provider options agree on the name."""
    if completion.provider == target.provider:
        return completion
    return completion.model_copy(update={"provider": target.provider})


def _summary(failures: Sequence[str]) -> str:
    if not failures:
        return "no model targets to try"
    return f"every model target failed ({len(failures)}): " + "; ".join(failures)
