"""Where spans go: the OpenTelemetry SDK with an OTLP (gRPC) or console exporter.

Imported only by the runtime, and only when an exporter is configured, so a service with
tracing off never loads the SDK. Spans leave in batches from a background thread: exporting
never sits on a request's path, and a collector that is down costs dropped spans, not latency.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from opentelemetry import trace

from keel_core.settings import TracingSettings


def configure_tracing(service: str, settings: TracingSettings) -> Callable[[], None] | None:
    """Install the process-wide tracer provider; returns its shutdown (flushes what is queued),
    or None when tracing is off."""
    if settings.exporter == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "keel",
            "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    exporter: SpanExporter
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=settings.otlp_endpoint,
            insecure=settings.otlp_insecure,
            timeout=int(settings.export_timeout_s),
        )
    else:
        exporter = ConsoleSpanExporter(service_name=service)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=settings.export_delay_ms)
    )
    trace.set_tracer_provider(provider)
    return provider.shutdown
