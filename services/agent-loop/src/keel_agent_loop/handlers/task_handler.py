"""The ``keel.tasks`` handler: run one session per TaskSubmitted and publish its result.

Delivery is at-least-once, so a task seen again whose session this process already finished
only has its result republished; it is not run twice.
"""

from __future__ import annotations

import logging

from keel_agent_loop.domain.loop import AgentLoop
from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.domain.prompts import preview
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.metrics import AgentMetrics
from keel_core.audit import AuditEmitter
from keel_core.bus import PoisonMessage
from keel_core.bus.producer import Publisher
from keel_core.canonical import sha256_hex
from keel_core.events import Envelope, TaskCompleted, TaskFailed, TaskSubmitted
from keel_core.topics import RESULTS
from keel_core.tracing import new_traceparent

log = logging.getLogger(__name__)

SOURCE = "agent-loop"


def state_from_task(envelope: Envelope, task: TaskSubmitted) -> AgentState:
    return AgentState(
        session_id=envelope.session_id,
        goal=task.goal,
        agent_id=task.agent_id,
        agent_profile=task.agent_profile,
        tenant=task.tenant,
        trace=envelope.trace or new_traceparent(),
        max_iterations=task.max_iterations,
    )


def result_of(state: AgentState) -> TaskCompleted | TaskFailed:
    if state.status == "completed":
        return TaskCompleted(
            answer=state.answer,
            iterations=state.iteration,
            prompt_tokens=state.usage.prompt_tokens,
            completion_tokens=state.usage.completion_tokens,
            cost_usd=state.usage.cost_usd,
        )
    return TaskFailed(
        reason=state.failure_reason or "error", error=state.error, iterations=state.iteration
    )


class TaskHandler:
    def __init__(
        self,
        loop: AgentLoop,
        store: SessionStore,
        publisher: Publisher,
        audit: AuditEmitter,
        metrics: AgentMetrics,
    ) -> None:
        self._loop = loop
        self._store = store
        self._publisher = publisher
        self._audit = audit
        self._metrics = metrics

    async def __call__(self, envelope: Envelope) -> None:
        if envelope.type != TaskSubmitted.event_type:
            raise PoisonMessage(
                f"expected {TaskSubmitted.event_type!r} on keel.tasks, got {envelope.type!r}"
            )
        task = envelope.parse(TaskSubmitted)  # a ValidationError is dead-lettered by the consumer
        if not envelope.session_id:
            raise PoisonMessage("task without a session id")
        record = self._store.get(envelope.session_id)
        if record is not None and record.result is not None:
            log.info("session %s already finished; republishing its result", record.session_id)
            await self._publish_result(record.session_id, record.trace, record.result)
            return
        if record is not None and record.status == "running":
            log.warning("session %s is already running here; duplicate ignored", record.session_id)
            return
        await self._run(state_from_task(envelope, task))

    async def _run(self, state: AgentState) -> None:
        self._store.started(state)
        await self._audit.record(
            "task.started",
            actor=state.agent_id,
            subject=state.session_id,
            session_id=state.session_id,
            trace=state.trace,
            details={
                "goal": preview(state.goal, 500),
                "agent_profile": state.agent_profile,
                "tenant": state.tenant,
                "max_iterations": state.max_iterations,
            },
        )
        try:
            await self._loop.run(state)
        except Exception as exc:
            # A bug or a broken sink: record the failure, then let the consumer dead-letter the
            # task with its traceback.
            if not state.finished:
                state.fail("error", f"internal error: {type(exc).__name__}: {exc}")
            await self._finish(state)
            raise
        await self._finish(state)

    async def _finish(self, state: AgentState) -> None:
        result = result_of(state)
        self._store.finished(state, result)
        self._metrics.session_finished(state)
        await self._publish_result(state.session_id, state.trace, result)
        details: dict[str, object] = {"iterations": state.iteration, **state.usage.model_dump()}
        if isinstance(result, TaskCompleted):
            details["answer_sha256"] = sha256_hex(result.answer)
        else:
            details.update(reason=result.reason, error=preview(result.error, 500))
        await self._audit.record(
            "task.completed" if isinstance(result, TaskCompleted) else "task.failed",
            actor=state.agent_id,
            subject=state.session_id,
            session_id=state.session_id,
            trace=state.trace,
            details=details,
        )

    async def _publish_result(
        self, session_id: str, trace: str, result: TaskCompleted | TaskFailed
    ) -> None:
        envelope = Envelope.wrap(result, source=SOURCE, session_id=session_id, trace=trace)
        await self._publisher.flush()  # the session's progress events land before its result
        await self._publisher.publish(RESULTS, envelope, key=session_id)
