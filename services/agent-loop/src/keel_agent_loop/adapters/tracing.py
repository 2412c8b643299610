"""The loop's step spans as OpenTelemetry spans (``keel_core.tracing``)."""

from __future__ import annotations

from collections.abc import Mapping

from keel_agent_loop.domain.ports import Span
from keel_core.tracing import start_span


class OtelStepTracer:
    def span(self, name: str, attributes: Mapping[str, str | int]) -> Span:
        return start_span(name, attributes=dict(attributes))
