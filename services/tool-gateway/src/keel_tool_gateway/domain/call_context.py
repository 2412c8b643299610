"""Who a tool is running for. Most tools need only their input; the few that act on the
outside (the outbox) also need the session and the idempotency key. They read it from a
context variable set around the run, as Temporal's ``activity.info()`` does, so the ``Tool``
signature stays one argument and ``asyncio.to_thread`` carries it to sync tools."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolContext:
    session_id: str = ""
    idempotency_key: str = ""
    approval_id: str = ""
    traceparent: str = ""
    agent_id: str = ""
    tenant: str = ""
    agent_profile: str = ""


_CURRENT: ContextVar[ToolContext | None] = ContextVar("keel_tool_call", default=None)


def current_call() -> ToolContext:
    """The call the running tool serves; an empty context outside a gateway run."""
    return _CURRENT.get() or ToolContext()


@contextmanager
def calling(ctx: ToolContext) -> Iterator[None]:
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        _CURRENT.reset(token)
