"""The ``keel.plans`` handler: the orchestrator of multi-agent plans.

Every event of a plan is keyed by its plan id, so the consumer hands one plan's events to this
handler one at a time, in order. For each event the handler loads the plan's state, applies
the event, publishes what follows from it (dispatches, the result) and only then saves the new
state. A crash between publishing and saving redelivers the event, which recomputes the same
dispatches: subtasks have deterministic session ids (``<plan_id>.<node_id>``), so the worker
side sees a duplicate, and a second "finished" for a node that is no longer running is ignored.

A ``PlanCancelRequested`` ends a running plan (``PlanState.cancel``): its running sessions get
the same cancel request ``AgentService.Cancel`` sends (``keel.tasks`` for a parked one,
``keel.control`` for a running one), a running nested plan gets a cancel of its own, the
cancel is audited (``plan.cancelled``), and the plan ends like a failed one (``PlanFinished``,
``TaskFailed`` with reason ``cancelled``, the parent plan told).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from keel_agent_loop.plans.scheduler import Dispatch, PlanState, Stop
from keel_agent_loop.plans.store import PlanStore, load_state, save_state
from keel_agent_loop.plans.validation import PlanInvalid
from keel_contracts.events import (
    Envelope,
    EventData,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskSubmitted,
)
from keel_contracts.events.plans import (
    NodeDispatched,
    NodeFinished,
    PlanCancelRequested,
    PlanFinished,
    PlanSubmitted,
    persona_metadata,
)
from keel_contracts.topics import CONTROL, PLANS, RESULTS, SUBTASKS, TASK_EVENTS, TASKS
from keel_core.audit import AuditEmitter
from keel_core.bus import PoisonMessage
from keel_core.bus.producer import Publisher

log = logging.getLogger(__name__)

SOURCE = "agent-loop.plans"


@dataclass(frozen=True)
class PlanTopics:
    """Where plan traffic goes; other names only in tests that need a topic set of their own."""

    plans: str = PLANS
    subtasks: str = SUBTASKS
    results: str = RESULTS
    task_events: str = TASK_EVENTS
    tasks: str = TASKS
    control: str = CONTROL


def finished_status(succeeded: bool) -> Literal["succeeded", "failed"]:
    return "succeeded" if succeeded else "failed"


class PlanHandler:
    def __init__(
        self,
        store: PlanStore,
        publisher: Publisher,
        source: str = SOURCE,
        topics: PlanTopics | None = None,
        audit: AuditEmitter | None = None,
    ) -> None:
        """``audit``: where plan cancels are recorded (None: not audited, unit tests only)."""
        self._audit = audit
        self._store = store
        self._publisher = publisher
        self._source = source
        self._topics = topics or PlanTopics()

    async def __call__(self, envelope: Envelope) -> None:
        if envelope.type == PlanSubmitted.event_type:
            await self._submitted(envelope, envelope.parse(PlanSubmitted))
        elif envelope.type == NodeFinished.event_type:
            await self._node_finished(envelope, envelope.parse(NodeFinished))
        elif envelope.type == PlanCancelRequested.event_type:
            await self._cancel(envelope, envelope.parse(PlanCancelRequested))
        elif envelope.type in (NodeDispatched.event_type, PlanFinished.event_type):
            return  # written by this handler, for watchers and timelines
        else:
            raise PoisonMessage(f"unexpected event type {envelope.type!r} on {self._topics.plans}")

    async def _submitted(self, envelope: Envelope, submitted: PlanSubmitted) -> None:
        plan_id = submitted.plan.plan_id or envelope.session_id
        if not plan_id:
            raise PoisonMessage("plan without a plan id or session id")
        if load_state(self._store, plan_id) is not None:
            log.info("plan %s already known; duplicate submission ignored", plan_id)
            return
        spec = submitted.plan.model_copy(update={"plan_id": plan_id})
        try:
            state = PlanState.start(
                spec,
                parent_plan_id=submitted.parent_plan_id,
                parent_node_id=submitted.parent_node_id,
                parent_session_id=submitted.parent_session_id,
            )
        except PlanInvalid as exc:
            log.warning("plan %s rejected: %s", plan_id, exc)
            await self._rejected(plan_id, submitted, f"invalid plan: {exc}", envelope.trace)
            return
        started = TaskProgress(
            kind="started",
            iteration=0,
            detail={"goal": spec.goal, "plan": True, "nodes": len(spec.nodes)},
        )
        await self._emit(self._topics.task_events, plan_id, started, envelope.trace)
        await self._dispatch(state, state.dispatch_ready(), envelope.trace)
        await save_state(self._store, state, envelope.trace)

    async def _node_finished(self, envelope: Envelope, finished: NodeFinished) -> None:
        state = load_state(self._store, finished.plan_id)
        if state is None:
            log.warning("node %s finished for unknown plan %s", finished.node_id, finished.plan_id)
            return
        changed = state.node_finished(
            finished.node_id, finished.status == "succeeded", finished.output, finished.error
        )
        if not changed:
            log.info(
                "plan %s: repeated or late result of %s ignored", state.plan_id, finished.node_id
            )
            return
        await self._dispatch(state, state.dispatch_ready(), envelope.trace)
        if state.finished:
            await self._plan_done(state, envelope.trace)
        await save_state(self._store, state, envelope.trace)

    async def _cancel(self, envelope: Envelope, request: PlanCancelRequested) -> None:
        state = load_state(self._store, request.plan_id)
        if state is None or state.finished:
            log.info("cancel of unknown or finished plan %s ignored", request.plan_id)
            return
        reason = request.reason or "cancelled by request"
        stops = state.cancel(reason)
        for stop in stops:
            await self._stop(state.plan_id, stop, reason, envelope.trace)
        if self._audit is not None:
            await self._audit.record(
                "plan.cancelled",
                actor=request.requested_by or "unknown",
                subject=state.plan_id,
                session_id=state.plan_id,
                trace=envelope.trace,
                details={"reason": reason, "stopped": [s.session_id for s in stops]},
            )
        await self._plan_done(state, envelope.trace, cancelled=True)
        await save_state(self._store, state, envelope.trace)

    async def _stop(self, plan_id: str, stop: Stop, reason: str, trace: str) -> None:
        """Ask a running node to stop: a nested plan is cancelled in turn; a session gets what
        ``AgentService.Cancel`` sends, durable (keel.tasks) and broadcast (keel.control)."""
        requested_by = f"plan:{plan_id}"
        if stop.kind == "plan":
            child = PlanCancelRequested(
                plan_id=stop.session_id, reason=reason, requested_by=requested_by
            )
            await self._emit(self._topics.plans, stop.session_id, child, trace)
            return
        cancel = TaskCancelRequested(reason=reason, requested_by=requested_by)
        await self._emit(self._topics.tasks, stop.session_id, cancel, trace)
        await self._emit(self._topics.control, stop.session_id, cancel, trace)

    async def _dispatch(self, state: PlanState, dispatches: list[Dispatch], trace: str) -> None:
        for dispatch in dispatches:
            await self._emit(
                self._topics.plans,
                state.plan_id,
                NodeDispatched(
                    plan_id=state.plan_id,
                    node_id=dispatch.node_id,
                    session_id=dispatch.session_id,
                    goal=dispatch.goal,
                    kind="plan" if dispatch.kind == "plan" else "agent",
                ),
                trace,
            )
            if dispatch.plan is not None:
                # A nested plan is its parent's tenant's, whatever its own spec says.
                child = dispatch.plan.model_copy(
                    update={
                        "plan_id": dispatch.session_id,
                        "goal": dispatch.goal,
                        "tenant": state.spec.tenant,
                    }
                )
                submitted = PlanSubmitted(
                    plan=child, parent_plan_id=state.plan_id, parent_node_id=dispatch.node_id
                )
                await self._emit(self._topics.plans, dispatch.session_id, submitted, trace)
                continue
            task = TaskSubmitted(
                goal=dispatch.goal,
                agent_profile=dispatch.agent_profile,
                agent_id=f"plan-{dispatch.node_id}",
                # The plan's tenant: its sessions' budgets, memory, policy and audit are its.
                tenant=state.spec.tenant,
                max_iterations=dispatch.max_iterations,
                metadata={
                    "plan_id": state.plan_id,
                    "node_id": dispatch.node_id,
                    **persona_metadata(dispatch.stance, dispatch.sampling),
                },
            )
            await self._emit(self._topics.subtasks, dispatch.session_id, task, trace)

    async def _plan_done(self, state: PlanState, trace: str, *, cancelled: bool = False) -> None:
        succeeded = state.status == "succeeded"
        finished = PlanFinished(
            plan_id=state.plan_id,
            status=finished_status(succeeded),
            output=state.output,
            error=state.error,
            nodes=state.statuses(),
        )
        await self._emit(self._topics.plans, state.plan_id, finished, trace)
        await self._tell_session(state.parent_session_id, finished, trace)
        ran = sum(1 for run in state.nodes.values() if run.status in ("succeeded", "failed"))
        result: TaskCompleted | TaskFailed = (
            TaskCompleted(answer=state.output, iterations=ran)
            if succeeded
            else TaskFailed(
                reason="cancelled" if cancelled else "error", error=state.error, iterations=ran
            )
        )
        await self._emit(self._topics.results, state.plan_id, result, trace)
        log.info("plan %s %s", state.plan_id, state.status)
        if state.parent_plan_id:
            back = NodeFinished(
                plan_id=state.parent_plan_id,
                node_id=state.parent_node_id,
                session_id=state.plan_id,
                status=finished_status(succeeded),
                output=state.output,
                error=state.error,
            )
            await self._emit(self._topics.plans, back.plan_id, back, trace)

    async def _rejected(
        self, plan_id: str, submitted: PlanSubmitted, reason: str, trace: str
    ) -> None:
        finished = PlanFinished(plan_id=plan_id, status="failed", error=reason)
        await self._emit(self._topics.plans, plan_id, finished, trace)
        await self._tell_session(submitted.parent_session_id, finished, trace)
        await self._emit(
            self._topics.results,
            plan_id,
            TaskFailed(reason="error", error=reason, iterations=0),
            trace,
        )
        if submitted.parent_plan_id:
            back = NodeFinished(
                plan_id=submitted.parent_plan_id,
                node_id=submitted.parent_node_id,
                session_id=plan_id,
                status="failed",
                error=reason,
            )
            await self._emit(self._topics.plans, back.plan_id, back, trace)

    async def _tell_session(self, session_id: str, finished: PlanFinished, trace: str) -> None:
        """Plan mode: the session that submitted the plan is parked on it; its end goes to
        that session's own lane (keel.subtasks, key = the session), where it resumes."""
        if session_id:
            await self._emit(self._topics.subtasks, session_id, finished, trace)

    async def _emit(self, topic: str, key: str, payload: EventData, trace: str) -> None:
        envelope = Envelope.wrap(payload, source=self._source, session_id=key, trace=trace)
        await self._publisher.publish(topic, envelope, key=key)
