"""W3C trace context (traceparent) carried in event envelopes, Kafka headers and gRPC metadata.

This is the propagation half of tracing: ids are created and passed on so one task's records can
be joined across services. Span export over OTLP builds on it (see the observability issue).
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str) -> str:
    """A new span id under the parent's trace; a fresh trace when the parent is malformed."""
    match = _TRACEPARENT.match(parent)
    if not match:
        return new_traceparent()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(3)}"


def trace_id_of(traceparent: str) -> str:
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else ""
