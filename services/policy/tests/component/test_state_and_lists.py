"""The built service (real ``build`` on the in-memory runtime and bus, real gRPC on loopback):
topic-backed lists change decisions without a reload, running totals survive a restart, and
a reservation the bus refuses fails closed (issue 13 items 1 and 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.events import Envelope
from keel_contracts.events.policy import PolicyListItem, PolicyStateReserved
from keel_contracts.topics import POLICY_LISTS, POLICY_STATE
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryBus, InMemoryRuntime
from keel_policy.app import SERVICE, PolicyParts, build
from keel_policy.config import Settings

POLICY = """
lists:
  payees: {items: [alice], topic: true}
vars:
  limit: 2
rules:
  - id: pay-known-payee
    tool: pay
    decision: allow
    when:
      - path: to
        in: $lists.payees
      - state: {count: pay, per: tenant, window: 1d, lte: $vars.limit}
"""


@asynccontextmanager
async def service(
    tmp_path: Path, bus: InMemoryBus
) -> AsyncIterator[tuple[policy_pb2_grpc.PolicyServiceStub, PolicyParts]]:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    settings = Settings(policy_file=policy_file, reload_interval_s=0, lists_refresh_s=0)
    runtime = InMemoryRuntime(SERVICE, settings, bus)
    parts = build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        yield policy_pb2_grpc.PolicyServiceStub(channel), parts


async def pay(stub: policy_pb2_grpc.PolicyServiceStub, to: str, key: str) -> str:
    reply = await stub.Evaluate(
        policy_pb2.EvaluateRequest(
            context=common_pb2.RequestContext(session_id="s1", tenant="acme"),
            tool_name="pay",
            arguments_json=f'{{"to": "{to}"}}',
            idempotency_key=key,
        )
    )
    return policy_pb2.Decision.Name(reply.decision)


def put_item(bus: InMemoryBus, name: str, item: str) -> None:
    entry = PolicyListItem(list=name, item=item)
    envelope = Envelope.wrap(entry, source="operator", session_id=entry.key)
    bus.append(POLICY_LISTS, envelope.to_bytes(), entry.key, [])


async def test_a_payee_added_on_the_topic_is_allowed_without_a_reload(tmp_path: Path) -> None:
    bus = InMemoryBus()
    put_item(bus, "payees", "bob")  # there before the start: loaded with the table
    async with service(tmp_path, bus) as (stub, parts):
        assert await pay(stub, "bob", "k1") == "DECISION_ALLOW"
        assert await pay(stub, "carol", "k2") == "DECISION_DENY"
        put_item(bus, "payees", "carol")
        assert parts.lists.refresh()
        assert await pay(stub, "carol", "k2") == "DECISION_ALLOW"
        bus.append(POLICY_LISTS, None, "payees:carol", [])  # tombstone: removed
        assert parts.lists.refresh()
        assert await pay(stub, "carol", "k3") == "DECISION_DENY"
        explained = await stub.Explain(
            policy_pb2.EvaluateRequest(tool_name="pay", arguments_json='{"to": "carol"}')
        )
    detail = explained.rules[0].conditions[0].detail
    assert '$lists.payees = ["alice"] + from the topic ["bob"]' in detail


async def test_the_count_survives_a_restart(tmp_path: Path) -> None:
    bus = InMemoryBus()
    async with service(tmp_path, bus) as (stub, _):
        assert await pay(stub, "alice", "s1:0:0") == "DECISION_ALLOW"
        assert await pay(stub, "alice", "s1:1:0") == "DECISION_ALLOW"
    reserved = bus.parsed(POLICY_STATE, PolicyStateReserved)
    assert [r.call_id for r in reserved] == ["s1:0:0", "s1:1:0"]
    assert {(c.meter, c.key) for c in reserved[0].charges} == {
        ("count|pay", "tenant:acme"),
        ("count|pay", "session:s1"),
        ("count|pay", "agent:"),
    }
    async with service(tmp_path, bus) as (stub, _):
        # The approved re-send of a counted call still passes; a third call does not.
        assert await pay(stub, "alice", "s1:1:0") == "DECISION_ALLOW"
        assert await pay(stub, "alice", "s1:2:0") == "DECISION_DENY"


async def test_a_reservation_the_bus_refuses_fails_closed_and_is_withdrawn(
    tmp_path: Path,
) -> None:
    bus = InMemoryBus()
    async with service(tmp_path, bus) as (stub, parts):
        bus.fail_next(POLICY_STATE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pay(stub, "alice", "s1:0:0")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert parts.state.ledger.total("count|pay", "tenant:acme", 0) == 0
        assert await pay(stub, "alice", "s1:0:0") == "DECISION_ALLOW"
        assert await pay(stub, "alice", "s1:1:0") == "DECISION_ALLOW"
        assert await pay(stub, "alice", "s1:2:0") == "DECISION_DENY"
