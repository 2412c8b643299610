"""Trace context and spans: what crosses a process boundary, and what a span hangs off."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.settings import TracingSettings
from keel_core.tracing import (
    _PROPAGATOR,
    current_traceparent,
    new_traceparent,
    start_span,
    trace_id_of,
)
from keel_core.tracing_export import configure_tracing


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans recorded by an SDK provider of the test's own (the global one stays untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer", lambda name, *a, **k: provider.get_tracer(name))
    yield exporter
    provider.shutdown()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    return next(s for s in spans if s.name == name)


def test_context_flows_under_a_remote_parent_even_when_nothing_records() -> None:
    parent = new_traceparent()
    assert current_traceparent() == ""
    with start_span("work", parent=parent):
        # The no-op tracer keeps the parent's ids: logs and calls made here join its trace.
        assert trace_id_of(current_traceparent()) == trace_id_of(parent)
    assert current_traceparent("fallback") == "fallback"


def test_nothing_recording_costs_no_tracer_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no SDK provider, a span is only the context it makes current: the tracer's span
    machinery is not entered at all (every consumed record and gRPC call opens a span)."""

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the no-op tracer was asked for a span")

    monkeypatch.setattr(trace.ProxyTracer, "start_as_current_span", refuse)
    monkeypatch.setattr(trace.NoOpTracer, "start_as_current_span", refuse)
    parent = new_traceparent()
    with start_span("process keel.tasks", kind=SpanKind.CONSUMER, parent=parent) as span:
        assert not span.is_recording()
        assert current_traceparent() == parent
        with start_span("step 1") as step:
            assert step is span
            assert current_traceparent() == parent
    assert current_traceparent() == ""


def test_attributes_given_as_a_function_are_built_only_when_something_records(
    exported: InMemorySpanExporter,
) -> None:
    built: list[str] = []

    def attributes() -> dict[str, str]:
        built.append("built")
        return {"messaging.destination.name": "keel.tasks"}

    with start_span("recorded", kind=SpanKind.CONSUMER, attributes=attributes):
        pass
    assert built == ["built"]
    recorded = by_name(exported.get_finished_spans(), "recorded")
    assert recorded.attributes == {"messaging.destination.name": "keel.tasks"}


def test_attributes_given_as_a_function_are_not_built_when_nothing_records() -> None:
    def attributes() -> dict[str, str]:
        raise AssertionError("built although nothing records")

    with start_span("process keel.tasks", parent=new_traceparent(), attributes=attributes):
        pass


def test_the_fast_path_makes_current_what_the_no_op_tracer_would() -> None:
    parent = new_traceparent()
    for traceparent in (parent, "not-a-traceparent", ""):
        with start_span("mine", parent=traceparent) as mine:
            made = current_traceparent()
        context = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        with trace.NoOpTracer().start_as_current_span("theirs", context=context) as theirs:
            expected = current_traceparent()
        assert made == expected
        assert mine.get_span_context() == theirs.get_span_context()


def test_an_exception_leaves_the_context_as_it_was() -> None:
    with pytest.raises(ValueError, match="boom"), start_span("fails", parent=new_traceparent()):
        raise ValueError("boom")
    assert current_traceparent() == ""


def test_a_span_under_a_remote_parent_joins_its_trace_and_nests_what_follows(
    exported: InMemorySpanExporter,
) -> None:
    parent = new_traceparent()
    with start_span("process keel.tasks", kind=SpanKind.CONSUMER, parent=parent):
        with start_span("step 1") as step:
            assert current_traceparent().split("-")[2] == format(
                step.get_span_context().span_id, "016x"
            )
    spans = exported.get_finished_spans()
    consumer, step_span = by_name(spans, "process keel.tasks"), by_name(spans, "step 1")
    assert format(consumer.context.trace_id, "032x") == trace_id_of(parent)
    assert consumer.parent is not None
    assert format(consumer.parent.span_id, "016x") == parent.split("-")[2]
    assert step_span.parent is not None
    assert step_span.parent.span_id == consumer.context.span_id


def test_a_malformed_parent_starts_a_new_trace(exported: InMemorySpanExporter) -> None:
    with start_span("orphan", parent="not-a-traceparent"):
        pass
    (span,) = exported.get_finished_spans()
    assert span.parent is None


def test_an_exception_marks_the_span_as_an_error(exported: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="boom"), start_span("fails"):
        raise ValueError("boom")
    (span,) = exported.get_finished_spans()
    assert not span.status.is_ok
    assert span.events[0].name == "exception"


async def test_a_grpc_call_carries_the_span_in_progress_to_the_server_span(
    exported: InMemorySpanExporter,
) -> None:
    server = GrpcServer("127.0.0.1", 0, [], CollectorRegistry())
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with start_span("caller", parent=new_traceparent()) as caller:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await server.stop(0)
    (served,) = [s for s in exported.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert served.name == "grpc.health.v1.Health/Check"
    assert served.parent is not None
    assert served.parent.span_id == caller.get_span_context().span_id
    assert served.context.trace_id == caller.get_span_context().trace_id
    assert served.attributes is not None
    assert served.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]


def test_exporting_is_off_unless_configured() -> None:
    assert configure_tracing("svc", TracingSettings()) is None


def test_the_tracing_settings_refuse_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_TRACING_SAMPLE_RATIO", "2")
    with pytest.raises(ValueError, match="sample_ratio"):
        TracingSettings()
    monkeypatch.setenv("KEEL_TRACING_SAMPLE_RATIO", "0.5")
    monkeypatch.setenv("KEEL_TRACING_EXPORTER", "otlp")
    assert TracingSettings().exporter == "otlp"
