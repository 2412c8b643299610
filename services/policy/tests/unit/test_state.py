"""State conditions: counts and sums per session / tenant / agent over a sliding window,
reserved when a call is let through (issue 13 item 3). The durable side is in
``component/test_state_and_lists.py`` and ``integration/test_policy_topics.py``."""

from typing import Any

from prometheus_client import CollectorRegistry

from keel_contracts.chat import RequestContext
from keel_core.testing import in_memory_audit
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.models import PolicyBundle, PolicySet, Rule
from keel_policy.domain.state import LocalReservations, StateLedger
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def decisions(
    when: list[dict[str, Any]], clock: Clock, tool: str = "send_*"
) -> tuple[PolicyDecisions, StateLedger]:
    rules = (Rule.model_validate({"id": "r", "tool": tool, "decision": "allow", "when": when}),)
    ledger = StateLedger()
    engine = PolicyEngine(PolicyBundle(sets=(PolicySet(rules=rules),)), state=ledger, clock=clock)
    audit, _ = in_memory_audit("policy")
    audit.start()
    use = PolicyDecisions(
        engine, audit, PolicyMetrics(CollectorRegistry()), LocalReservations(ledger)
    )
    return use, ledger


def ctx(session: str = "s1", tenant: str = "acme") -> RequestContext:
    return RequestContext(session_id=session, agent_id="a1", tenant=tenant)


async def run(use: PolicyDecisions, n: int, args: dict[str, Any], c: RequestContext) -> list[str]:
    return [(await use.decide("send_message", args, c)).decision for _ in range(n)]


async def test_at_most_n_messages_per_session() -> None:
    use, _ = await decisions([{"state": {"count": "send_*", "per": "session", "lte": 3}}], Clock())
    assert await run(use, 4, {}, ctx("s1")) == ["allow", "allow", "allow", "deny"]
    # Another session has its own count.
    assert await run(use, 1, {}, ctx("s2")) == ["allow"]


async def test_amount_per_tenant_per_day_slides_with_the_window() -> None:
    clock = Clock()
    when = [
        {
            "state": {
                "sum": "$.amount",
                "tool": "send_*",
                "per": "tenant",
                "window": "1d",
                "lte": 100,
            }
        }
    ]
    use, _ = await decisions(when, clock)
    assert await run(use, 1, {"amount": 60}, ctx("s1")) == ["allow"]
    # 60 + 50 > 100, whatever the session: the total is the tenant's.
    assert await run(use, 1, {"amount": 50}, ctx("s2")) == ["deny"]
    assert await run(use, 1, {"amount": 40}, ctx("s2")) == ["allow"]
    assert await run(use, 1, {"amount": 1}, ctx("s3", tenant="other")) == ["allow"]
    clock.now += DAY + 1
    assert await run(use, 1, {"amount": 100}, ctx("s1")) == ["allow"]


async def test_a_denied_call_is_not_counted() -> None:
    when = [
        {"state": {"count": "send_*", "lte": 2}},
        {"path": "to", "endswith": "@corp.example"},
    ]
    use, ledger = await decisions(when, Clock())
    assert await run(use, 3, {"to": "x@evil.example"}, ctx()) == ["deny"] * 3
    assert await run(use, 2, {"to": "x@corp.example"}, ctx()) == ["allow", "allow"]
    assert await run(use, 1, {"to": "x@corp.example"}, ctx()) == ["deny"]


async def test_the_same_call_decided_twice_counts_once() -> None:
    """An approved call is re-sent with its idempotency key: it must not count again."""
    use, ledger = await decisions([{"state": {"count": "send_*", "lte": 1}}], Clock())
    first = await use.decide("send_message", {}, ctx(), idempotency_key="s1:0:0")
    again = await use.decide("send_message", {}, ctx(), idempotency_key="s1:0:0")
    assert (first.decision, again.decision) == ("allow", "allow")
    assert ledger.total("count|send_*", "session:s1", 0) == 1
    # A different call is the second one.
    other = await use.decide("send_message", {}, ctx(), idempotency_key="s1:1:0")
    assert other.decision == "deny"


async def test_other_tools_neither_count_nor_are_limited() -> None:
    use, _ = await decisions([{"state": {"count": "send_*", "lte": 1}}], Clock(), tool="*")
    assert (await use.decide("send_a", {}, ctx())).decision == "allow"
    assert (await use.decide("calculator", {}, ctx())).decision == "allow"
    assert (await use.decide("calculator", {}, ctx())).decision == "allow"
    assert (await use.decide("send_b", {}, ctx())).decision == "deny"


async def test_explain_shows_the_running_total() -> None:
    use, _ = await decisions([{"state": {"count": "send_*", "lte": 2}}], Clock())
    await run(use, 2, {}, ctx())
    trace = use.explain("send_message", {}, ctx()).rules[0].conditions[0]
    assert not trace.passed
    assert trace.detail == "count|send_* for session 's1': 2 so far + 1 this call = 3"
    assert "state: calls of send_* per session in 7d, this call included, <= 2" in trace.condition


def test_ledger_prunes_and_dedupes() -> None:
    from keel_policy.domain.state import StateEntry

    ledger = StateLedger()
    assert ledger.add(StateEntry("m", "k", "c1", 10.0, 2.0))
    assert not ledger.add(StateEntry("m", "k", "c1", 10.0, 2.0))
    assert ledger.add(StateEntry("m", "k", "c2", 20.0, 3.0))
    assert ledger.total("m", "k", since=0) == 5.0
    assert ledger.total("m", "k", since=10.0) == 3.0
    assert ledger.prune(before=15.0) == 1
    assert ledger.total("m", "k", since=0) == 3.0


async def test_a_call_waiting_for_a_person_counts_only_once_approved() -> None:
    """Held calls (an injected payment a person has not approved) must not push the user's own
    calls over a limit: only calls that run count — approved re-sends included."""
    rule = {
        "id": "approve-up-to-two",
        "tool": "send_*",
        "decision": "require_approval",
        "when": [{"state": {"count": "send_*", "per": "session", "lte": 2}}],
    }
    ledger = StateLedger()
    engine = PolicyEngine(
        PolicyBundle(sets=(PolicySet(rules=(Rule.model_validate(rule),)),)),
        state=ledger,
        clock=Clock(),
    )
    audit, _ = in_memory_audit("policy")
    audit.start()
    use = PolicyDecisions(
        engine, audit, PolicyMetrics(CollectorRegistry()), LocalReservations(ledger)
    )

    async def decide(key: str, approved: bool) -> str:
        verdict = await use.decide("send_message", {}, ctx(), key, approved=approved)
        return verdict.decision

    held = [await decide(f"held-{i}", approved=False) for i in range(3)]
    assert held == ["require_approval"] * 3  # waiting for a person: nothing counted
    approved = [await decide(f"ok-{i}", approved=True) for i in range(3)]
    assert approved == ["require_approval", "require_approval", "deny"]


async def test_approved_travels_from_the_client_through_the_servicer() -> None:
    from keel.policy.v1 import policy_pb2, policy_pb2_grpc
    from keel_clients import PolicyClient
    from keel_core.grpc import GrpcServer, insecure_channel
    from keel_policy.handlers.grpc_servicer import PolicyServicer

    rule = {
        "id": "approve-one",
        "tool": "send_*",
        "decision": "require_approval",
        "when": [{"state": {"count": "send_*", "per": "session", "lte": 1}}],
    }
    ledger = StateLedger()
    engine = PolicyEngine(
        PolicyBundle(sets=(PolicySet(rules=(Rule.model_validate(rule),)),)), state=ledger
    )
    audit, _ = in_memory_audit("policy")
    audit.start()
    use = PolicyDecisions(
        engine, audit, PolicyMetrics(CollectorRegistry()), LocalReservations(ledger)
    )
    name = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(PolicyServicer(use), policy_pb2_grpc.add_PolicyServiceServicer_to_server, name)],
        CollectorRegistry(),
    )
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            client = PolicyClient(channel)
            held = await client.evaluate(ctx(), "send_message", {}, idempotency_key="k1")
            first = await client.evaluate(
                ctx(), "send_message", {}, idempotency_key="k2", approved=True
            )
            second = await client.evaluate(
                ctx(), "send_message", {}, idempotency_key="k3", approved=True
            )
    finally:
        await server.stop(0)
        await audit.close()
    assert [v.decision for v in (held, first, second)] == ["require_approval"] * 2 + ["deny"]
