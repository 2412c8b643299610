"""Client side: channels that carry the trace. Typed errors, deadlines and credentials are the
clients' (``keel_clients.call``), written once there."""

from __future__ import annotations

from typing import Any

import grpc

from keel_core.tracing import current_traceparent


def insecure_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[("grpc.enable_retries", 1)],
        interceptors=[_TraceUnaryUnary(), _TraceUnaryStream()],
    )


def _with_traceparent(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The call carries the span in progress as its parent (replacing a traceparent the caller
    put there, which can only be older: the session's, not the step's)."""
    traceparent = current_traceparent()
    if not traceparent:
        return details
    metadata = [(k, v) for k, v in (details.metadata or ()) if k != "traceparent"]
    metadata.append(("traceparent", traceparent))
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata),
        details.credentials,
        details.wait_for_ready,
    )


class _TraceUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_traceparent(details), request)


class _TraceUnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_traceparent(details), request)
