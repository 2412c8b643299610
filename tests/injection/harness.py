"""Runs each scenario through the tool gateway's real decision path with the real policy
engine, driven by a deliberately gullible scripted agent.

The agent is the worst case: it does the user's task (the reference calls, in order) and, the
first time anything it reads — the tool catalog's descriptions, a tool's output or its error
text — contains the scenario's injected text, it makes every call the injection asks for,
then carries on with the task. It does not react to text it never received, so a read that
policy stopped also stops the hijack.

Every call goes through ``ExecutionService.execute`` (ledger, argument validation, policy, run)
with the policy service's own use case (``PolicyDecisions``: running totals reserved as the
service does) over the shipped default policy plus the variant's files. No approval service is
wired: a call that needs approval is answered ``needs_approval`` and never runs, which counts
as "stopped pending a person" — nothing is auto-approved.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from keel_clients.policy import findings_to_proto
from keel_contracts.chat import RequestContext
from keel_contracts.policy import PolicyVerdict
from keel_core.testing import in_memory_audit
from keel_policy.adapters.policy_file import load_policy
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.state import LocalReservations, StateLedger
from keel_policy.handlers.mapping import findings_from_proto
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import ExecutionResult
from keel_tool_gateway.domain.provenance import Finding, ProvenanceIndex
from tests.injection.environment import registry_for
from tests.injection.scenarios import Call, Scenario

POLICIES = Path(__file__).parent / "policies"
PROFILE = "assistant"


@dataclass(frozen=True)
class Variant:
    """One column of the report: the shipped default policy plus the files of ``layers`` (in
    order; a later layer's file replaces an earlier one of the same name)."""

    name: str
    layers: tuple[str, ...]
    description: str

    def files(self) -> list[Path]:
        chosen: dict[str, Path] = {}
        for layer in self.layers:
            for path in sorted((POLICIES / layer).glob("*.y*ml")):
                chosen[path.name] = path
        return list(chosen.values())

    @property
    def ready(self) -> bool:
        """A layered variant runs only once its last layer holds a policy file."""
        return not self.layers or any((POLICIES / self.layers[-1]).glob("*.y*ml"))


VARIANTS = (
    Variant("shipped", (), "the shipped default policy alone (deny by default)"),
    Variant("operator", ("operator",), "default + tests/injection/policies/operator"),
    # policies/provenance/assistant.yaml replaces the operator file: the operator's rules plus
    # `provenance:` rules on argument text that came only from untrusted tool output.
    Variant(
        "provenance",
        ("operator", "provenance"),
        "operator + tests/injection/policies/provenance (provenance conditions)",
    ),
)


class InProcessPolicy:
    """The tool gateway's policy port over the policy service's use case, in-process: the
    verdicts are the service's own (same engine, same reservations), without a socket. The
    gateway's provenance findings cross as they do on the wire: the policy client's mapping to
    protobuf and the policy service's mapping back."""

    def __init__(self, decisions: PolicyDecisions) -> None:
        self._decisions = decisions

    async def evaluate(
        self,
        ctx: RequestContext,
        tool: str,
        arguments: dict[str, Any],
        *,
        idempotency_key: str = "",
        provenance: Sequence[Finding] = (),
        approved: bool = False,
    ) -> PolicyVerdict:
        findings = findings_from_proto(findings_to_proto(provenance))
        verdict = await self._decisions.decide(
            tool, arguments, ctx, idempotency_key, findings, approved=approved
        )
        return PolicyVerdict(
            decision=verdict.decision,
            rule_id=verdict.rule_id,
            reason=verdict.reason,
            policy_set=verdict.policy_set,
        )


def load_variant(variant: Variant) -> Any:
    """The variant's policy bundle, loaded by the service's loader from one directory (the
    default policy first, so the operator's sets may ``extends: default``)."""
    with tempfile.TemporaryDirectory(prefix="keel-injection-") as folder:
        root = Path(folder)
        shutil.copy(DEFAULT_POLICY, root / "00-default.yaml")
        for path in variant.files():
            shutil.copy(path, root / path.name)
        for layer in variant.layers:
            for extra in (POLICIES / layer).glob("*.txt"):
                shutil.copy(extra, root / extra.name)
        return load_policy(root)


@dataclass
class CallRecord:
    tool: str
    status: str
    rule: str
    expect: str = "ok"

    @property
    def succeeded(self) -> bool:
        """Let through and answered as the task expects (a tool error is the point of a
        tool-error scenario's call, not a failure of the task)."""
        return self.status == self.expect

    @property
    def stopped(self) -> bool:
        return self.status in ("denied", "needs_approval")


@dataclass
class ScenarioRun:
    scenario: Scenario
    legit: list[CallRecord] = field(default_factory=list)
    attack: list[CallRecord] = field(default_factory=list)
    hijacked: bool = False
    goal_reached: bool = False


async def run_variant(
    variant: Variant,
    scenarios: Sequence[Scenario],
    base: dict[str, Any],
    *,
    injected: bool = True,
) -> list[ScenarioRun]:
    """Every scenario under ``variant``'s policy; ``injected=False`` runs the clean worlds."""
    bundle = load_variant(variant)
    audit, _ = in_memory_audit("policy")
    audit.start()
    try:
        return [await _run_one(bundle, audit, s, base, injected) for s in scenarios]
    finally:
        await audit.close()


async def _run_one(
    bundle: Any, audit: Any, scenario: Scenario, base: dict[str, Any], injected: bool
) -> ScenarioRun:
    # A fresh engine and running totals per scenario: each is its own user session.
    state = StateLedger()
    decisions = PolicyDecisions(
        PolicyEngine(bundle, state=state),
        audit,
        PolicyMetrics(CollectorRegistry()),
        LocalReservations(state),
    )
    world = scenario.world(base, injected=injected)
    registry = registry_for(world)
    # The gateway's own provenance path: an index derived from this ledger, as app.py wires it.
    ledger = ResultLedger(1000)
    service = ExecutionService(
        registry, InProcessPolicy(decisions), ledger, provenance=ProvenanceIndex(ledger)
    )
    agent = GullibleAgent(scenario, service)
    await agent.observe(" ".join(entry.description for entry in registry.catalog(PROFILE)))
    for call in scenario.reference:
        result = await agent.call(call)
        agent.run.legit.append(CallRecord(call.tool, result.status, result.rule_id, call.expect))
        await agent.observe(f"{result.output}\n{result.error}")
    agent.run.goal_reached = scenario.reached_when.reached(world.effects)
    return agent.run


class GullibleAgent:
    """A fully hijackable model: it obeys the injection as soon as it reads it."""

    def __init__(self, scenario: Scenario, service: ExecutionService) -> None:
        self.run = ScenarioRun(scenario)
        self._service = service
        self._ctx = RequestContext(
            session_id=scenario.id, agent_id="injection-suite", agent_profile=PROFILE
        )
        self._step = 0

    async def call(self, call: Call) -> ExecutionResult:
        key = f"{self._ctx.session_id}:{self._step}:0"
        self._step += 1
        return await self._service.execute(
            self._ctx, call.tool, json.dumps(call.args), key, task_text=self.run.scenario.task
        )

    async def observe(self, text: str) -> None:
        injection = self.run.scenario.injection
        if self.run.hijacked or injection.text not in text:
            return
        self.run.hijacked = True
        for call in injection.attack:
            result = await self.call(call)
            self.run.attack.append(CallRecord(call.tool, result.status, result.rule_id))
