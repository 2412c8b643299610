"""Server interceptors: the error mapping (maps domain errors to status codes, times every call
and traces it: a server span under the caller's ``traceparent``), the base the others share,
and the chain that gives gRPC all of a server's interceptors as one."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from opentelemetry.trace import Span, SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram

from keel_contracts.errors import KeelError
from keel_core.grpc.errors import status_of
from keel_core.logging import session_id_var, trace_id_var
from keel_core.tracing import start_span, trace_id_of

log = logging.getLogger(__name__)


class GrpcMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "keel_grpc_server_handling_seconds",
            "gRPC handling time",
            ["method"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.handled = Counter(
            "keel_grpc_server_handled",
            "gRPC calls by status",
            ["method", "code"],
            registry=registry,
        )


class MethodInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps the behaviour of every unary-unary and unary-stream method (the kinds Keel
    serves); subclasses say how, and what becomes of any other kind (passed on as it is).

    gRPC asks every interceptor for the handler on every call; the wrapped handler of a method
    is made once and handed out again while the handler under it is the same object (it is:
    the registered one, or the inner interceptor's own remembered wrapper), instead of new
    closures and handler tuples per call. Wrappers read their interceptor's state at call
    time, so a limiter configured later still applies."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        # Subclasses keep their own __init__: the memo lives in the instance's dict.
        memo: dict[str, tuple[Any, Any]] = self.__dict__.setdefault("_wrapped_handlers", {})
        return _remembered(memo, details.method, await continuation(details), self.wrap_handler)

    def wrap_handler(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` with this interceptor's behaviour around it (made once per method)."""
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return self._other_kind(method, handler)

    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        raise NotImplementedError

    def _wrap_stream(self, method: str, behaviour: Any) -> Any:
        raise NotImplementedError

    def _other_kind(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return handler


class InterceptorChain(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Several ``MethodInterceptor``s as the one interceptor gRPC calls: the first outermost,
    exactly as if each were given to the server in that order.

    gRPC awaits every interceptor's ``intercept_service`` on every call, each through a
    continuation of its own; chained here, a call pays one, and the wrapped handler of a
    method (every interceptor's wrapper around the registered one) is made once and handed
    out again while the registered handler is the same object."""

    def __init__(self, interceptors: Sequence[MethodInterceptor]) -> None:
        self.interceptors = tuple(interceptors)
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        return _remembered(self._wrapped, details.method, await continuation(details), self._wrap)

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        for interceptor in reversed(self.interceptors):
            handler = interceptor.wrap_handler(method, handler)
        return handler


def _remembered(
    memo: dict[str, tuple[Any, Any]],
    method: str,
    handler: grpc.RpcMethodHandler | None,
    wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler],
) -> grpc.RpcMethodHandler | None:
    """``wrap(method, handler)``, made once and handed out again while ``handler`` is the same
    object; None (no such method) stays None."""
    if handler is None:
        return None
    known = memo.get(method)
    if known is not None and known[0] is handler:
        return known[1]
    wrapped = wrap(method, handler)
    memo[method] = (handler, wrapped)
    return wrapped


class ErrorMappingInterceptor(MethodInterceptor):
    def __init__(self, metrics: GrpcMetrics) -> None:
        self._metrics = metrics
        # The metric children of each method and (method, code): a ``labels`` lookup takes a
        # lock and builds a key tuple on every call otherwise.
        self._latency: dict[str, Any] = {}
        self._handled: dict[tuple[str, grpc.StatusCode], Any] = {}

    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        name, rpc = _span_name(method), _rpc(method)  # once per method, not per call

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            parent = _bind_log_context(request, context)
            code = grpc.StatusCode.OK
            with start_span(name, kind=SpanKind.SERVER, parent=parent, attributes=rpc) as span:
                try:
                    return await behaviour(request, context)
                except KeelError as exc:
                    code = status_of(exc)
                    await context.abort(code, _bounded(str(exc)))
                except Exception as exc:
                    if _is_abort(exc):
                        code = context.code() or grpc.StatusCode.UNKNOWN
                        raise
                    code = grpc.StatusCode.INTERNAL
                    log.exception("unhandled error in %s", method)
                    await context.abort(code, f"internal error: {type(exc).__name__}")
                finally:
                    _end(span, code)
                    self._observe(method, code, started)

        return wrapped

    def _wrap_stream(self, method: str, behaviour: Any) -> Any:
        name, rpc = _span_name(method), _rpc(method)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            parent = _bind_log_context(request, context)
            code = grpc.StatusCode.OK
            with start_span(name, kind=SpanKind.SERVER, parent=parent, attributes=rpc) as span:
                try:
                    async for item in behaviour(request, context):
                        yield item
                except KeelError as exc:
                    code = status_of(exc)
                    await context.abort(code, _bounded(str(exc)))
                finally:
                    _end(span, code)
                    self._observe(method, code, started)

        return wrapped

    def _observe(self, method: str, code: grpc.StatusCode, started: float) -> None:
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = self._metrics.latency.labels(method)
        latency.observe(time.perf_counter() - started)
        handled = self._handled.get((method, code))
        if handled is None:
            handled = self._handled[method, code] = self._metrics.handled.labels(method, code.name)
        handled.inc()


def _bind_log_context(request: Any, context: grpc.aio.ServicerContext) -> str:
    """Log lines of this call carry the caller's session and trace; returns the caller's
    traceparent: the ``traceparent`` metadata (the caller's span in progress), else the
    request's ``RequestContext`` (the session's trace)."""
    ctx = getattr(request, "context", None)
    session_id = getattr(ctx, "session_id", "") or getattr(request, "session_id", "")
    if isinstance(session_id, str) and session_id:
        session_id_var.set(session_id)
    metadata = dict(context.invocation_metadata() or ())
    traceparent = metadata.get("traceparent", "") or getattr(ctx, "traceparent", "")
    if not isinstance(traceparent, str):
        return ""
    if traceparent:
        trace_id_var.set(trace_id_of(traceparent))
    return traceparent


def _span_name(method: str) -> str:
    """``/keel.llm.v1.LLMGateway/Complete`` → ``keel.llm.v1.LLMGateway/Complete`` (the RPC
    semantic conventions' span name)."""
    return method.lstrip("/")


def _rpc(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _end(span: Span, code: grpc.StatusCode) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_status(StatusCode.ERROR, code.name)


# A status message travels as HTTP/2 trailer metadata, which clients cap (8 KiB by default): an
# error that echoes a huge field back would reach the caller as RESOURCE_EXHAUSTED instead of
# the status the server meant.
MAX_STATUS_MESSAGE_CHARS = 1000


def _bounded(message: str) -> str:
    if len(message) <= MAX_STATUS_MESSAGE_CHARS:
        return message
    cut = len(message) - MAX_STATUS_MESSAGE_CHARS
    return f"{message[:MAX_STATUS_MESSAGE_CHARS]}… [{cut} more characters]"


def _is_abort(exc: Exception) -> bool:
    # context.abort() raises a private exception type; let it through untouched.
    return type(exc).__name__ == "AbortError"
