"""Tracing: W3C trace context across Kafka and gRPC, and OpenTelemetry spans along the way.

Every event envelope carries a ``traceparent``; every gRPC call carries one in its metadata.
Spans are made through the OpenTelemetry API, which does nothing until a service configures an
exporter (``keel_core.tracing_export``). Even then, with tracing off, the trace *context* still
flows: a span started under a remote parent keeps the parent's ids, so log lines and audit
records of one session share a trace id whatever the exporter setting.

With nothing recording (no SDK provider: the default, and what the bench measures) a span is
only the context it makes current, so ``start_span`` takes a fast path: no tracer call, no
attributes looked at, and a remote parent parsed once per traceparent (a session's records and
calls repeat the same one). It makes current exactly the span the no-op tracer would.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, ProxyTracer, ProxyTracerProvider, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "keel"

Attributes = Mapping[str, AttributeValue]


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str) -> str:
    """A new span id under the parent's trace; a fresh trace when the parent is malformed."""
    match = _TRACEPARENT.match(parent)
    if not match:
        return new_traceparent()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(3)}"


def is_traceparent(text: str) -> bool:
    """A well-formed W3C traceparent (what may travel as gRPC metadata: a record's ``trace``
    field is whatever its writer put there)."""
    return _TRACEPARENT.match(text) is not None


def trace_id_of(traceparent: str) -> str:
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else ""


def current_traceparent(fallback: str = "") -> str:
    """The traceparent of the span in progress (what a call made now should carry): what the
    W3C propagator's ``inject`` writes, formatted here without a carrier."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return fallback
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    )


@functools.lru_cache(maxsize=4096)
def _parent_context(traceparent: str) -> otel_context.Context | None:
    # Cached: a context is never changed once made (OpenTelemetry copies on every set), and
    # the records and calls of one session carry the same few traceparents.
    if not _TRACEPARENT.match(traceparent):
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def _nothing_records(tracer: trace.Tracer) -> bool:
    """The tracer is the API's no-op one: no SDK provider has been installed (a test may hand
    out a recording tracer of its own through ``trace.get_tracer``, hence the tracer)."""
    if isinstance(tracer, NoOpTracer):
        return True
    return isinstance(tracer, ProxyTracer) and isinstance(
        trace.get_tracer_provider(), ProxyTracerProvider
    )


@contextmanager
def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str = "",
    attributes: Attributes | Callable[[], Attributes] | None = None,
    start_time_ns: int | None = None,
) -> Iterator[Span]:
    """A span made current for the block. ``parent`` (a traceparent) starts it under a remote
    span — a Kafka record's or a gRPC caller's — instead of the span in progress here.
    ``attributes`` may be a function, called only when something records (a consumer builds
    nine per record otherwise). Exceptions leaving the block are recorded and set the span's
    status to error."""
    context = _parent_context(parent) if parent else None
    tracer = trace.get_tracer(TRACER_NAME)
    if _nothing_records(tracer):
        # What the no-op tracer does, without its machinery: the span is the parent's
        # (non-recording) span, or the one already current, which then needs no attaching.
        span = trace.get_current_span(context)
        if context is None:
            yield span
            return
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)
        return
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes() if callable(attributes) else attributes,
        start_time=start_time_ns,
    ) as span:
        yield span


def set_attributes(attributes: Attributes) -> None:
    """Add attributes to the span in progress (a no-op when nothing records)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
