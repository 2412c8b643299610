"""gRPC metadata every outgoing call carries: the session's trace. The channel's interceptor
replaces it with the span in progress when there is one (keel_core.grpc.client); this keeps
calls made outside any span in the session's trace."""

from __future__ import annotations

from keel_agent_loop.domain.models import RequestContext


def trace_metadata(ctx: RequestContext) -> tuple[tuple[str, str], ...]:
    return (("traceparent", ctx.traceparent),) if ctx.traceparent else ()
