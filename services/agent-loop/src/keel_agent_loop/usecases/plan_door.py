"""What the AgentService offers for plans: submit one as the caller, and await its answer.

``keel plan`` (an operator) may publish plans straight to ``keel.plans``; a caller of another
system (the agents server's ``run_plan``, any gRPC client) comes through here instead, so the
plan is judged like a ``Submit``: the caller's token says whose it is, the plan carries that
tenant to every session it starts, and a plan that cannot run is refused with the reason
before anything is published.

The answer: the orchestrator (whichever replica holds the plan's partition) publishes the
plan's end as ``PlanFinished`` on ``keel.plans`` under its plan id. Each replica follows that
topic without a group (``adapters.plan_results``; the agent loop already reads it, so no new
Kafka grant) and settles the plans it accepted, so ``get`` answers (or waits) for them. Like
sessions, the records are in-process: another replica does not know this one's plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from keel_agent_loop.plans.validation import PlanInvalid, check_plan, count_nodes
from keel_contracts.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from keel_contracts.events import Envelope
from keel_contracts.events.plans import PlanFinished, PlanSpec, PlanSubmitted
from keel_contracts.topics import PLANS
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Publisher
from keel_core.tracing import new_traceparent

SOURCE = "agent-loop"
PlanStatus = Literal["running", "completed", "failed"]
# A long poll is held at most this long, whatever the caller asked: a waiting call holds a
# stream of the server.
MAX_WAIT_S = 600.0
# No dots: a node's session is ``<plan_id>.<node_id>`` and is split back at its last dot.
PLAN_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True)
class PlanCaller:
    """Who submits: the tenant bound to the caller's token, the caller's name, and the
    transport identity the call came through (the mTLS peer: e.g. ``agents-server``), so the
    audit record says both who asked and through what."""

    tenant: str
    who: str = ""
    via: str = ""


@dataclass
class PlanRecord:
    plan_id: str
    tenant: str
    nodes: int
    status: PlanStatus = "running"
    answer: str = ""
    error: str = ""
    nodes_run: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


def parse_plan(plan_json: str) -> PlanSpec:
    """The plan in a request, checked (ids, dependencies, cycles, references); anything else
    is ``InvalidArgument`` naming what to fix."""
    try:
        spec = PlanSpec.model_validate_json(plan_json)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'plan'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise InvalidArgument(f"not a plan: {problems}") from exc
    try:
        return check_plan(spec)
    except PlanInvalid as exc:
        raise InvalidArgument(f"invalid plan: {exc}") from exc


class PlanDoor:
    def __init__(
        self,
        publisher: Publisher,
        audit: AuditEmitter,
        *,
        capacity: int = 10_000,
        topic: str = PLANS,
    ) -> None:
        self._publisher = publisher
        self._audit = audit
        self._capacity = capacity
        self._topic = topic
        self._plans: OrderedDict[str, PlanRecord] = OrderedDict()

    async def submit(self, plan_json: str, plan_id: str, caller: PlanCaller) -> PlanRecord:
        """Check the plan, stamp the caller's tenant on it and publish it; the plan's record.

        The same plan id submitted again by its tenant is the plan already on its way
        (idempotent); another tenant's is refused. ``Unavailable`` when it could not be
        published (nothing is recorded then, so a retry submits it again).
        """
        spec = parse_plan(plan_json)
        plan_id = plan_id or spec.plan_id or uuid.uuid4().hex
        if not PLAN_ID.match(plan_id):
            raise InvalidArgument("plan_id must be 1-100 letters, digits, '_' or '-'")
        known = self._plans.get(plan_id)
        if known is not None:
            if known.tenant != caller.tenant:
                raise AlreadyExists(f"plan id {plan_id!r} is taken")
            return known
        spec = spec.model_copy(update={"plan_id": plan_id, "tenant": caller.tenant})
        trace = new_traceparent()
        submitted = PlanSubmitted(plan=spec, submitted_by=caller.who or "AgentService.SubmitPlan")
        record = PlanRecord(plan_id, caller.tenant, count_nodes(spec))
        self._plans[plan_id] = record
        try:
            envelope = Envelope.wrap(submitted, source=SOURCE, session_id=plan_id, trace=trace)
            await self._publisher.publish(self._topic, envelope, key=plan_id)
        except Exception as exc:
            del self._plans[plan_id]
            raise Unavailable(f"could not publish the plan: {exc}") from exc
        self._evict()
        await self._audit.record(
            "plan.submitted",
            actor=caller.who or "?",
            subject=plan_id,
            session_id=plan_id,
            trace=trace,
            details={
                "tenant": caller.tenant,
                "via": caller.via,
                "goal": spec.goal[:500],
                "nodes": record.nodes,
            },
        )
        return record

    async def get(self, plan_id: str, tenant: str | None, wait_s: float = 0.0) -> PlanRecord:
        """The plan as it stands, after waiting up to ``wait_s`` for it to finish.

        ``tenant``: the caller's (None: any, an operator). Another tenant's plan is answered
        as unknown, so its existence does not leak.
        """
        record = self._plans.get(plan_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            raise NotFound(f"unknown plan {plan_id!r}")
        if wait_s > 0 and not record.done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait_s, MAX_WAIT_S)):
                    await record.done.wait()
        return record

    async def finished(self, envelope: Envelope) -> None:
        """A record of ``keel.plans``: a ``PlanFinished`` settles its plan if this replica
        holds it; anything else (dispatches, another replica's plans) is not ours."""
        if envelope.type != PlanFinished.event_type:
            return
        record = self._plans.get(envelope.session_id)
        if record is None or record.done.is_set():
            return
        ended = envelope.parse(PlanFinished)
        if ended.plan_id != record.plan_id:
            return
        if ended.status == "succeeded":
            record.status, record.answer = "completed", ended.output
        else:
            record.status, record.error = "failed", ended.error
        record.nodes_run = sum(1 for s in ended.nodes.values() if s in ("succeeded", "failed"))
        record.done.set()

    def _evict(self) -> None:
        """Forget the oldest finished plans past ``capacity`` (running ones are kept)."""
        excess = len(self._plans) - self._capacity
        for plan_id in [k for k, v in self._plans.items() if v.done.is_set()][: max(excess, 0)]:
            del self._plans[plan_id]
