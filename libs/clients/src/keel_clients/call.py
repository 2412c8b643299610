"""What every client does on every call, written once: the deadline, the caller's
credentials and trace in the metadata, a client span, and a failed status turned into the
matching ``keel_contracts.errors`` type (callers never see ``AioRpcError``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from opentelemetry.trace import Span, SpanKind

from keel_contracts.chat import RequestContext
from keel_core.grpc.errors import error_from_status
from keel_core.tracing import is_traceparent, start_span

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]
Attributes = Mapping[str, str | int | float | bool]

DEFAULT_DEADLINE_S = 30.0


@dataclass(frozen=True)
class CallOptions:
    """Per-client settings of every call.

    ``token`` is the caller's bearer credential (a JWT with the caller's tenant and roles, or a
    static reviewer token); it travels as ``authorization`` metadata on every call of the
    client, in place of the token the channel's credentials carry (``open_channel``).
    """

    timeout_s: float = DEFAULT_DEADLINE_S
    token: str = ""


class Caller:
    def __init__(self, options: CallOptions) -> None:
        self.options = options

    def metadata(self, ctx: RequestContext | None = None) -> Metadata | None:
        """The session's trace (the channel's interceptor replaces it with the span in
        progress when there is one) and the caller's token; None when there is neither (grpc
        does less work for a call without metadata)."""
        pairs: list[tuple[str, str]] = []
        # A malformed one (from a hostile record's trace field) is dropped: grpc refuses a
        # call whose metadata is not valid header text.
        if ctx is not None and is_traceparent(ctx.traceparent):
            pairs.append(("traceparent", ctx.traceparent))
        if self.options.token:
            pairs.append(("authorization", f"Bearer {self.options.token}"))
        return tuple(pairs) or None

    async def unary(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        ctx: RequestContext | None = None,
        *,
        timeout_s: float | None = None,
    ) -> T:
        return await call_with_errors(
            lambda: method(
                request, timeout=timeout_s or self.options.timeout_s, metadata=self.metadata(ctx)
            )
        )

    async def stream(
        self,
        method: Callable[..., Any],
        request: Any,
        ctx: RequestContext | None = None,
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[Any]:
        """A server stream; ``timeout_s=None`` uses no deadline (a watch runs until closed)."""
        call = method(request, timeout=timeout_s, metadata=self.metadata(ctx))
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise error_from_status(exc.code(), exc.details() or "") from exc
        finally:
            call.cancel()


async def call_with_errors(call: Callable[[], Awaitable[T]]) -> T:
    """Await a call; a failed status becomes the matching ``keel_contracts.errors`` type (for
    the rare caller that must send what no client would, such as a test of a malformed
    request)."""
    try:
        return await call()
    except grpc.aio.AioRpcError as exc:
        raise error_from_status(exc.code(), exc.details() or "") from exc


def client_span(name: str, attributes: Attributes) -> Any:
    """A CLIENT span around one call (a no-op when tracing is off)."""
    return start_span(name, kind=SpanKind.CLIENT, attributes=dict(attributes))


def set_span(span: Span, attributes: Attributes) -> None:
    if span.is_recording():
        for key, value in attributes.items():
            span.set_attribute(key, value)
