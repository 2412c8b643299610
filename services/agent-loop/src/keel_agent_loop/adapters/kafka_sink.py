"""EventSink onto Kafka: progress to ``keel.task-events``, approval requests to
``keel.approval.requests``, both keyed by session id so a session's events stay in order."""

from __future__ import annotations

from collections.abc import Callable

from keel_agent_loop.domain.models import RequestContext
from keel_contracts.events import ApprovalRequested, Envelope, EventData, TaskProgress
from keel_contracts.topics import APPROVAL_REQUESTS, TASK_EVENTS
from keel_core.bus.producer import Publisher

SOURCE = "agent-loop"


class KafkaEventSink:
    def __init__(
        self, publisher: Publisher, echo: Callable[[Envelope], object] | None = None
    ) -> None:
        """``echo`` is handed each progress record once it is queued: this process's own
        watchers (``EventHistory``) need not wait for it to come back from the broker, so
        the history's follower can batch its reads of everyone's records."""
        self._publisher = publisher
        self._echo = echo

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None:
        # Progress is for watchers, nothing is rebuilt from it: enqueue without waiting for the
        # broker; the task handler flushes before it publishes the result.
        envelope = _wrap(ctx, event)
        await self._publisher.enqueue(TASK_EVENTS, envelope, key=ctx.session_id)
        if self._echo is not None:
            self._echo(envelope)

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None:
        await self._publisher.publish(APPROVAL_REQUESTS, _wrap(ctx, request), key=ctx.session_id)


def _wrap(ctx: RequestContext, payload: EventData) -> Envelope:
    return Envelope.wrap(payload, source=SOURCE, session_id=ctx.session_id, trace=ctx.traceparent)
