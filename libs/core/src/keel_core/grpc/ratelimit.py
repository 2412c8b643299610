"""The server interceptor that applies rate limits to gRPC calls, per method group.

Each ``MethodLimit`` rule names the methods it counts (a prefix of the full method name), the
bucket kind and where the key is read from the request (the tenant, the tool's name, the
model). It runs inside the authorization interceptor, so a token caller's tenant has already
been bound into the request: a caller cannot spend another tenant's tokens by naming it.

A refused call ends RESOURCE_EXHAUSTED before the handler runs, with the seconds to wait in
the trailing metadata ``retry-after`` and in the message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import grpc

from keel_contracts.errors import ConfigError
from keel_core.grpc.interceptors import MethodInterceptor
from keel_core.ratelimit.config import MethodLimit
from keel_core.ratelimit.limiter import RateLimiter, Refusal
from keel_core.ratelimit.shared import share

if TYPE_CHECKING:  # keel_core.runtime imports the gRPC server, which imports this module
    from keel_core.runtime import Runtime

RETRY_AFTER = "retry-after"
# The key of a request that carries none of the rule's fields.
NO_KEY = "-"


class RateLimitInterceptor(MethodInterceptor):
    """Off until ``configure`` gives it a limiter (every server carries one; a service with
    no limits pays one attribute test per call)."""

    def __init__(self) -> None:
        self._limiter: RateLimiter | None = None
        self._rules: tuple[MethodLimit, ...] = ()

    def configure(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._rules = tuple(limiter.settings.grpc or ())

    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            # Decided without awaiting: only a refusal awaits (the abort).
            refusal = self.decide(method, request)
            if refusal is not None:
                await _refuse(context, refusal)
            return await behaviour(request, context)

        return wrapped

    def _wrap_stream(self, method: str, behaviour: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            refusal = self.decide(method, request)
            if refusal is not None:
                await _refuse(context, refusal)
            async for item in behaviour(request, context):
                yield item

        return wrapped

    def decide(self, method: str, request: Any) -> Refusal | None:
        """Take a token from every rule's bucket that counts ``method``; the first refusal, or
        None. Rules are taken in order and a refusal stops there: tokens an earlier rule took
        stay taken (a refused call may count, over-counting rather than under)."""
        limiter = self._limiter
        if limiter is None:
            return None
        for rule in self._rules:
            if method.startswith(rule.methods):
                refusal = limiter.check(rule.kind, key_of(request, rule.key))
                if refusal is not None:
                    return refusal
        return None


async def _refuse(context: grpc.aio.ServicerContext, refusal: Refusal) -> None:
    """End the call RESOURCE_EXHAUSTED, the seconds to wait in ``retry-after``."""
    context.set_trailing_metadata(((RETRY_AFTER, str(refusal.retry_after)),))
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message())


def key_of(request: Any, paths: str) -> str:
    """The first non-empty string at one of the ``|``-separated dotted field paths."""
    for path in paths.split("|"):
        value: Any = request
        for name in path.split("."):
            value = getattr(value, name, None)
            if value is None:
                break
        if isinstance(value, str) and value:
            return value
    return NO_KEY


@runtime_checkable
class _LimitsCalls(Protocol):
    def limit_calls(self, limiter: RateLimiter) -> None: ...


def limit_grpc(runtime: object, limiter: RateLimiter) -> None:
    """Apply the limiter's ``grpc`` rules to the server the runtime serves (call after
    ``runtime.serve_grpc``); nothing when there are no rules or no limits. Reads the runtime's
    ``grpc`` server because the ``Runtime`` protocol has no hook for it yet."""
    if not limiter.settings.grpc or not limiter.settings.enabled:
        return
    server = getattr(runtime, "grpc", None)
    if not isinstance(server, _LimitsCalls):
        raise ConfigError("rate limits on gRPC calls need the runtime's gRPC server: serve first")
    server.limit_calls(limiter)


def apply_rate_limits(limiter: RateLimiter, runtime: Runtime, service: str) -> None:
    """A service's whole wiring of its limits, after ``serve_grpc``: the gRPC rules, and the
    spend shared with its other replicas when ``shared`` is set."""
    limit_grpc(runtime, limiter)
    share(limiter, runtime, service)
