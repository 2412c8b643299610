"""The policy service's use case: decide a tool call (verdict, metrics, audit, shadow) and
explain one. Handlers translate protobuf to these calls and back; nothing here knows gRPC."""

from __future__ import annotations

import uuid
from typing import Any

from keel_contracts.chat import RequestContext
from keel_core.audit import AuditEmitter
from keel_core.redaction import audit_value, redact
from keel_core.tracing import set_attributes
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.holder import PolicyHolder
from keel_policy.domain.models import Rule
from keel_policy.domain.provenance import Finding
from keel_policy.domain.results import Explanation, Verdict
from keel_policy.domain.state import LocalReservations, Reservations, StateLedger
from keel_policy.metrics import PolicyMetrics


class PolicyDecisions:
    """Reads the policy in force from ``policy`` on every call, so a hot reload takes effect
    on the next request; a bare engine is held fixed (tests, embedding).

    Every decision is counted and audited, because the audit trail is what lets an operator
    show why a tool ran; a shadow (candidate) policy is decided and audited alongside but never
    enforced, so a new policy can be tried on real traffic first.

    A call that will run — allowed, or needing approval that the caller has verified (its
    approved re-send) — is reserved on the running totals that state conditions read before
    the verdict is returned: the strict way, since the next call must see it whether or not
    this one ends up running. A call still waiting for a person counts for nothing yet, so
    calls held for approval (an injected payment, say) cannot push the user's own calls over
    a limit (see docs/adr/0010-policy-state.md).
    """

    def __init__(
        self,
        policy: PolicyEngine | PolicyHolder,
        audit: AuditEmitter,
        metrics: PolicyMetrics,
        reservations: Reservations | None = None,
    ) -> None:
        self._holder = policy if isinstance(policy, PolicyHolder) else PolicyHolder(policy)
        self._audit = audit
        self._metrics = metrics
        self._reservations = reservations or LocalReservations(StateLedger())

    async def decide(
        self,
        tool: str,
        arguments: dict[str, Any],
        ctx: RequestContext,
        idempotency_key: str = "",
        provenance: tuple[Finding, ...] = (),
        *,
        approved: bool = False,
    ) -> Verdict:
        """The enforced verdict on one call, counted and audited before it is returned.
        Raises ``Unavailable`` when a reservation could not be recorded (fail closed)."""
        profile = ctx.agent_profile or "default"
        engine = self._holder.engine
        now = engine.now()
        outcome = engine.decide(
            tool,
            arguments,
            profile,
            ctx.tenant,
            session_id=ctx.session_id,
            agent_id=ctx.agent_id,
            now=now,
            call_id=idempotency_key,
            provenance=provenance,
        )
        verdict = outcome.verdict
        if outcome.charges and _runs(verdict.decision, approved):
            # No await between the decision above and the reservation's local count.
            call_id = idempotency_key or f"anon-{uuid.uuid4().hex}"
            await self._reservations.reserve(outcome.charges, call_id, now)
        self._metrics.decisions.labels(verdict.decision, verdict.rule_id, verdict.policy_set).inc()
        set_attributes(
            {
                "keel.tool.name": tool,
                "keel.policy.decision": verdict.decision,
                "keel.policy.rule_id": verdict.rule_id,
                "keel.policy.set": verdict.policy_set,
            }
        )
        details = _details(ctx, tool, arguments, verdict)
        if provenance:
            # What the verdict saw about where the arguments' text came from (bounded).
            details["provenance"] = [
                {
                    "path": f.path,
                    # A span under a secret-looking key is redacted like the argument itself.
                    "span": redact({f.path: f.span})[f.path],
                    "sources": list(f.sources),
                    "in_task": f.in_task,
                }
                for f in provenance[:_AUDITED_FINDINGS]
            ]
        await self._audit.record(
            "policy.decision",
            actor=ctx.agent_id or "unknown",
            subject=tool,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details=details,
        )
        if outcome.shadow is not None:
            await self._audit_shadow(ctx, tool, details, verdict, outcome.shadow)
        return verdict

    def explain(
        self,
        tool: str,
        arguments: dict[str, Any],
        ctx: RequestContext,
        provenance: tuple[Finding, ...] = (),
    ) -> Explanation:
        """Every rule's trace for one call; grants nothing, so it is neither counted nor
        audited."""
        return self._holder.engine.explain(
            tool,
            arguments,
            ctx.agent_profile or "default",
            ctx.tenant,
            session_id=ctx.session_id,
            agent_id=ctx.agent_id,
            provenance=provenance,
        )

    def rules_for(self, profile: str, tenant: str) -> tuple[str, tuple[Rule, ...]]:
        """The name of the set a caller gets and its rules, in evaluation order (every
        profile's when ``profile`` is empty)."""
        return self._holder.engine.rules_for(profile, tenant)

    async def _audit_shadow(
        self,
        ctx: RequestContext,
        tool: str,
        details: dict[str, Any],
        enforced: Verdict,
        shadow: Verdict,
    ) -> None:
        agrees = shadow.decision == enforced.decision
        self._metrics.shadow_decisions.labels(enforced.policy_set, str(agrees).lower()).inc()
        await self._audit.record(
            "policy.shadow_decision",
            actor=ctx.agent_id or "unknown",
            subject=tool,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={
                **details,
                "decision": shadow.decision,
                "rule": shadow.rule_id,
                "reason": shadow.reason,
                "policy_set": shadow.policy_set,
                "enforced_decision": enforced.decision,
                "enforced_rule": enforced.rule_id,
                "agrees": agrees,
            },
        )


# Findings written into one audit record at most (a call reports at most 64).
_AUDITED_FINDINGS = 16


def _details(
    ctx: RequestContext, tool: str, arguments: dict[str, Any], verdict: Verdict
) -> dict[str, Any]:
    return {
        "decision": verdict.decision,
        "rule": verdict.rule_id,
        "reason": verdict.reason,
        "policy_set": verdict.policy_set,
        "tool": tool,
        "agent": ctx.agent_id,
        "tenant": ctx.tenant,
        "profile": ctx.agent_profile,
        "arguments": audit_value(arguments),
    }


def _runs(decision: str, approved: bool) -> bool:
    """Whether a call with this verdict goes ahead (and so adds to running totals)."""
    return decision == "allow" or (decision == "require_approval" and approved)
