"""gRPC metadata every outgoing call carries."""

from __future__ import annotations

from keel_agent_loop.domain.models import RequestContext


def trace_metadata(ctx: RequestContext) -> tuple[tuple[str, str], ...]:
    return (("traceparent", ctx.traceparent),) if ctx.traceparent else ()
