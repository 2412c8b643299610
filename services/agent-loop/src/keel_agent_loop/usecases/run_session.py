"""Drive agent sessions from the records that concern them: a task starts a session (or
resumes it from its checkpoint), a reviewer's decision continues a parked one, a cancel
request ends a parked or only checkpointed one.

Every method returns when the session finishes or parks, so the caller (the Kafka handler)
commits the record only then: a process killed mid-session has the record redelivered to the
next owner, which resumes from the checkpoint. Calls for one session run one at a time in
this process.

Outages of the services a session needs are waited out here, never shown to the model. The
ports retry ``Unavailable``/``DeadlineExceeded`` within a step's deadline
(``adapters.patience``); past it the loop raises ``ServiceOutage`` with the state consistent
(nothing of the outage in the history), and ``_drive`` PARKS the session: a durable checkpoint
of exactly that step (``AgentState.stalled``: where, since when), a pause, then the session is
driven again from the same step (same call, same idempotency key; the model is not asked
again). The handler does not return meanwhile, on purpose: the consumer commits a record only
when its handler returns, so the record stays uncommitted and a crash or a rebalance (which
cancels the handler) redelivers it to an owner that resumes from that checkpoint — nothing is
lost. Only this session's lane waits (the consumer runs other keys concurrently), and a cancel
flag raised meanwhile stops it at the next attempt. A session stuck at one step for
``OutagePolicy.limit_s`` (counted from its first park there, across restarts) fails with
reason ``infrastructure``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from keel_agent_loop.domain.approvals import decision_problem
from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.loop import AgentLoop
from keel_agent_loop.domain.models import AgentState, Stall
from keel_agent_loop.domain.ports import CheckpointStore, MemoryPort, NoCheckpoints
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.errors import ServiceOutage
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.usecases.finish_session import Finisher, FinishHook
from keel_agent_loop.usecases.spans import agent_attributes, session_parent, trace_approval_wait
from keel_contracts.approvals import SignatureVerifier
from keel_contracts.events import ApprovalDecided, TaskSubmitted
from keel_contracts.events.plans import PlanFinished
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core import semconv
from keel_core.audit import AuditEmitter
from keel_core.bus import PoisonMessage, is_bus_outage
from keel_core.bus.producer import Publisher
from keel_core.tracing import new_traceparent, start_span

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionDefaults:
    """Budgets of a task that names none."""

    token_budget: int | None = None
    cost_budget_usd: float | None = None


def state_from_task(
    session_id: str, trace: str, task: TaskSubmitted, defaults: SessionDefaults | None = None
) -> AgentState:
    """The opening state of a new session (a new trace when the task carries none)."""
    defaults = defaults or SessionDefaults()
    return AgentState(
        session_id=session_id,
        goal=task.goal,
        agent_id=task.agent_id,
        agent_profile=task.agent_profile,
        tenant=task.tenant,
        trace=trace or new_traceparent(),
        max_iterations=task.max_iterations,
        token_budget=task.token_budget or defaults.token_budget,
        cost_budget_usd=(
            task.cost_budget_usd if task.cost_budget_usd is not None else defaults.cost_budget_usd
        ),
        metadata=dict(task.metadata),
    )


@dataclass(frozen=True)
class OutagePolicy:
    """How long a session waits out an outage at one step before it fails with reason
    ``infrastructure``, and the pause between its parking and its next attempt."""

    limit_s: float = 600.0
    pause_s: float = 5.0


class SessionRunner:
    def __init__(
        self,
        loop: AgentLoop,
        store: SessionStore,
        publisher: Publisher,
        audit: AuditEmitter,
        metrics: AgentMetrics,
        *,
        checkpoints: CheckpointStore | None = None,
        memory: MemoryPort | None = None,
        cancels: CancelFlags | None = None,
        defaults: SessionDefaults | None = None,
        finish_hooks: Iterable[FinishHook] = (),
        decision_wait_s: float = 3.0,
        outages: OutagePolicy | None = None,
        clock: Callable[[], float] = time.time,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        """``verifier`` checks every decision before it resumes a session (the approval
        service's public key); None in the insecure dev mode, where decisions are trusted."""
        self._verifier = verifier
        self._audit = audit
        self._outages = outages or OutagePolicy()
        self._clock = clock
        self._loop = loop
        self._store = store
        self._checkpoints = checkpoints or NoCheckpoints()
        self._cancels = cancels or CancelFlags()
        self._defaults = defaults or SessionDefaults()
        self._decision_wait_s = decision_wait_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._finisher = Finisher(
            store,
            publisher,
            audit,
            metrics,
            self._checkpoints,
            self._cancels,
            memory,
            list(finish_hooks),
        )

    def add_finish_hook(self, hook: FinishHook) -> None:
        """Called after a session's result is published (e.g. to report a plan node)."""
        self._finisher.hooks.append(hook)

    async def start(self, session_id: str, trace: str, task: TaskSubmitted) -> None:
        """Start the task's session; RESUME it when a checkpoint exists (a redelivery after a
        crash or a rebalance). A session that has finished (its end marker in the table, or
        this process ran it) is not run again and publishes no new result."""
        async with self._one_at_a_time(session_id):
            await self._start(session_id, trace, task)

    async def decide(self, session_id: str, decision: ApprovalDecided) -> None:
        """Continue the session parked on the decision's approval."""
        async with self._one_at_a_time(session_id):
            await self._decide(session_id, decision)

    async def plan_finished(self, session_id: str, finished: PlanFinished) -> None:
        """Continue the session parked (plan mode) on the plan that ended."""
        async with self._one_at_a_time(session_id):
            await self._plan_finished(session_id, finished)

    async def cancel(self, session_id: str, reason: str) -> None:
        """Cancel a session that is parked or only checkpointed (a running one is stopped
        through its cancel flag, raised here too)."""
        async with self._one_at_a_time(session_id):
            await self._cancel(session_id, reason or "cancelled")

    @asynccontextmanager
    async def _one_at_a_time(self, session_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(session_id) is lock:
                del self._locks[session_id]

    async def _finished_already(self, session_id: str) -> bool:
        """Whether the session has ended; every record that drives a session asks this first.

        Asked of the durable end marker in ``keel.checkpoints`` (a redelivered record often
        reaches a process that never ran the session), then of this process's memory (a
        marker already swept). An end whose finish was interrupted is completed here, with
        the identical result envelope; otherwise nothing is published again.
        """
        marker = self._checkpoints.finished(session_id)
        if marker is not None:
            if marker.done:
                log.info("session %s finished already; its result stands", session_id)
            else:
                log.info("session %s finished before a crash; completing its finish", session_id)
                await self._finisher.complete(marker)
            return True
        record = self._store.get(session_id)
        if record is not None and record.result is not None:
            log.info("session %s finished in this process already", session_id)
            return True
        return False

    async def _start(self, session_id: str, trace: str, task: TaskSubmitted) -> None:
        if await self._finished_already(session_id):
            return
        state = self._checkpoints.get(session_id)
        if state is None:
            state = state_from_task(session_id, trace, task, self._defaults)
            await self._finisher.started(state)
            await self._drive(state, self._loop.run(state))
            return
        if state.finished:
            # A terminal checkpoint of a version that wrote no end marker.
            log.info("session %s finished before a restart; completing its finish", session_id)
            await self._finisher.finish(state)
            return
        log.info("resuming session %s from its checkpoint (%s)", session_id, state.status)
        self._store.started(state)
        await self._loop.resumed(state, "task")
        if state.status == "waiting_for_approval":
            await self._loop.reask(state)
            return
        if state.status == "waiting_for_plan":
            await self._loop.resubmit_plan(state)
            return
        await self._drive(state, self._loop.run(state))

    async def _decide(self, session_id: str, decision: ApprovalDecided) -> None:
        if await self._finished_already(session_id):
            log.info("decision %s: session %s has finished", decision.approval_id, session_id)
            return
        state = await self._checkpoint_for(session_id, decision.approval_id)
        if state is None or state.finished:
            log.info(
                "decision %s for unknown or finished session %s ignored",
                decision.approval_id,
                session_id,
            )
            return
        await self._verify(state, decision)
        pending = state.pending_approval
        if pending is not None and pending.approval_id == decision.approval_id:
            trace_approval_wait(state, pending, decision)
            self._store.started(state)
            await self._drive(state, self._loop.decide(state, decision))
        elif decision.approval_id in state.decided_approvals and pending is None:
            # Applied before a crash: this uncommitted decision is what drives the session on.
            self._store.started(state)
            await self._loop.resumed(state, "decision")
            await self._drive(state, self._loop.run(state))
        else:
            log.info(
                "decision %s does not match session %s; ignored", decision.approval_id, session_id
            )

    async def _plan_finished(self, session_id: str, finished: PlanFinished) -> None:
        if await self._finished_already(session_id):
            return
        state = self._checkpoints.get(session_id)
        pending = state.pending_plan if state is not None else None
        if state is None or pending is None or pending.plan_id != finished.plan_id:
            log.info("plan %s: session %s does not wait for it", finished.plan_id, session_id)
            return
        self._store.started(state)
        await self._loop.resumed(state, "plan")
        await self._drive(state, self._loop.plan_finished(state, finished))

    async def _verify(self, state: AgentState, decision: ApprovalDecided) -> None:
        """Refuse a decision the approval service did not sign for this call: audited as
        ``security.denied`` and dead-lettered with the reason; the session stays parked."""
        if self._verifier is None:
            return
        now = datetime.fromtimestamp(self._clock(), UTC)
        problem = decision_problem(state, decision, self._verifier, now)
        if problem is None:
            return
        log.warning("decision %s refused: %s", decision.approval_id, problem)
        await self._audit.record(
            "security.denied",
            actor=decision.reviewer or "unknown",
            subject=decision.approval_id,
            session_id=state.session_id,
            details={"reason": problem, "topic": APPROVAL_DECISIONS},
        )
        raise PoisonMessage(f"approval decision refused: {problem}")

    async def _checkpoint_for(self, session_id: str, approval_id: str) -> AgentState | None:
        """The session's checkpoint; waits briefly for one that knows the approval, since a
        checkpoint written by another replica reaches this one's table a moment later."""
        deadline = asyncio.get_running_loop().time() + self._decision_wait_s
        while True:
            state = self._checkpoints.get(session_id)
            known = state is not None and (
                state.finished
                or approval_id in state.decided_approvals
                or (
                    state.pending_approval is not None
                    and state.pending_approval.approval_id == approval_id
                )
            )
            if known or asyncio.get_running_loop().time() >= deadline:
                return state
            await asyncio.sleep(0.1)

    async def _cancel(self, session_id: str, reason: str) -> None:
        if await self._finished_already(session_id):
            log.info("cancel of %s: it finished already", session_id)
            return
        self._cancels.request(session_id, reason)
        state = self._checkpoints.get(session_id)
        if state is None or state.finished:
            log.info("cancel of %s: nothing to cancel here", session_id)
            return
        self._store.started(state)
        await self._loop.cancel(state, reason)
        await self._finisher.finish(state)

    async def _drive(self, state: AgentState, run: Awaitable[AgentState]) -> None:
        self._store.started(state)
        try:
            with start_span(
                f"{semconv.INVOKE_AGENT} {state.agent_id or state.agent_profile}",
                parent=session_parent(state),
                attributes=agent_attributes(state),
            ) as span:
                while True:
                    try:
                        await run
                        break
                    except ServiceOutage as outage:
                        if not await self._park_on(state, outage):
                            break
                    except Exception as exc:
                        # Kafka down or restarting (a checkpoint or event write timed out): the
                        # same wait as any other service's outage, never a failed session.
                        if not is_bus_outage(exc):
                            raise
                        if not await self._park_on(state, ServiceOutage("kafka", exc)):
                            break
                    run = self._loop.run(state)  # the same step again, where it stalled
                state.stalled = None
                span.set_attribute("keel.session.status", state.status)
        except Exception as exc:
            # A bug or a broken sink: record the failure, then let the caller (the consumer)
            # dead-letter the record with its traceback.
            if not state.finished:
                state.fail("error", f"internal error: {type(exc).__name__}: {exc}")
            await self._finisher.finish(state)
            raise
        if state.finished:
            await self._finisher.finish(state)

    async def _park_on(self, state: AgentState, outage: ServiceOutage) -> bool:
        """Park the session on an outage: True to drive it again after the pause, False when
        it has failed with reason ``infrastructure`` (stuck at this step past the limit)."""
        now = self._clock()
        step = state.step_id()
        if state.stalled is None or state.stalled.step != step:
            state.stalled = Stall(step=step, since=now, error=str(outage))
        else:
            state.stalled = state.stalled.model_copy(update={"error": str(outage)})
        waited = now - state.stalled.since
        if waited >= self._outages.limit_s:
            await self._loop.give_up(
                state,
                f"infrastructure: {outage} (waited {waited:.0f}s at one step, "
                f"limit {self._outages.limit_s:.0f}s)",
            )
            return False
        # Durable: a crash from here on resumes this very step (the record is not committed).
        # With the bus itself down the save may fail too: then a crash resumes from the last
        # checkpoint written (the iteration runs again; its tool calls answer from the ledger).
        try:
            await self._checkpoints.save(state)
        except Exception as exc:
            if not is_bus_outage(exc):
                raise
            log.warning("session %s: parked checkpoint not written: %s", state.session_id, exc)
        log.warning(
            "session %s parked on an outage (%s), for %.0fs so far: %s",
            state.session_id,
            outage.service,
            waited,
            outage,
        )
        await asyncio.sleep(self._outages.pause_s)  # the pause before the next attempt
        return True
