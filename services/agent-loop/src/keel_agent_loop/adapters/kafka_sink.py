"""EventSink onto Kafka: progress to ``keel.task-events``, approval requests to
``keel.approval.requests``, both keyed by session id so a session's events stay in order."""

from __future__ import annotations

from keel_agent_loop.domain.models import RequestContext
from keel_core.bus.producer import Publisher
from keel_core.events import ApprovalRequested, Envelope, EventData, TaskProgress
from keel_core.topics import APPROVAL_REQUESTS, TASK_EVENTS

SOURCE = "agent-loop"


class KafkaEventSink:
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None:
        await self._publish(TASK_EVENTS, ctx, event)

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None:
        await self._publish(APPROVAL_REQUESTS, ctx, request)

    async def _publish(self, topic: str, ctx: RequestContext, payload: EventData) -> None:
        envelope = Envelope.wrap(
            payload, source=SOURCE, session_id=ctx.session_id, trace=ctx.traceparent
        )
        await self._publisher.publish(topic, envelope, key=ctx.session_id)
