"""Lists and state on the real broker (issue 13 items 1 and 3): an item added with
``keel policy list add`` reaches a running policy service's decisions without a reload, and a
running total reserved by one policy process is counted by the next one (a restart)."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel_cli.policy_cmd import list_command
from keel_contracts.chat import RequestContext
from keel_contracts.topics import POLICY_LISTS, POLICY_STATE
from keel_core.bus import EventProducer
from keel_core.bus.follower import TopicFollower
from keel_core.bus.table import CompactedTable
from keel_core.settings import KafkaSettings
from keel_core.testing import in_memory_audit
from keel_policy.adapters.list_topic import TopicLists
from keel_policy.adapters.state_topic import TopicState
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.models import NamedList, PolicyBundle, PolicySet, Rule
from keel_policy.domain.names import LiveLists
from keel_policy.domain.state import StateLedger
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions

pytestmark = pytest.mark.kafka


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "policy-test")
    await p.start()
    yield p
    await p.stop()


def policy(when: list[dict[str, Any]], **names: Any) -> PolicyBundle:
    rule = Rule.model_validate({"id": "r", "tool": "pay", "decision": "allow", "when": when})
    return PolicyBundle(sets=(PolicySet(rules=(rule,)),), **names)


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 20) -> None:
    """Wait for a condition the broker makes true (a record followed), checking often."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = condition()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.05)


async def test_a_list_item_added_by_the_cli_changes_decisions_without_a_reload(
    kafka: KafkaSettings, producer: EventProducer, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"payees_{uuid.uuid4().hex[:8]}"
    live = LiveLists()
    engine = PolicyEngine(
        policy([{"path": "to", "in": f"$lists.{name}"}], lists={name: NamedList(topic=True)}),
        live=live,
    )
    table = CompactedTable(kafka, POLICY_LISTS, producer, "policy")
    await table.start()
    lists = TopicLists(table, live, interval_s=0.05)
    await lists.start()
    try:
        assert engine.evaluate("pay", {"to": "bob"}).decision == "deny"
        add = argparse.Namespace(list_command="add", name=name, item="bob")
        assert await list_command(kafka, add) == 0
        await until(lambda: engine.evaluate("pay", {"to": "bob"}).decision == "allow")
        show = argparse.Namespace(list_command="show", name=name)
        assert await list_command(kafka, show) == 0
        assert capsys.readouterr().out.splitlines()[-2:] == ["bob", f"1 item(s) in list {name!r}"]
        remove = argparse.Namespace(list_command="remove", name=name, item="bob")
        assert await list_command(kafka, remove) == 0
        await until(lambda: engine.evaluate("pay", {"to": "bob"}).decision == "deny")
    finally:
        await lists.stop()
        await table.stop()


async def open_policy(
    kafka: KafkaSettings, producer: EventProducer, bundle: PolicyBundle
) -> tuple[PolicyDecisions, TopicFollower]:
    """What app.py wires for state, minus gRPC: the ledger folded from the topic."""
    ledger = StateLedger()
    follower = TopicFollower(kafka, POLICY_STATE, f"policy-state-{uuid.uuid4().hex[:6]}")
    state = TopicState(ledger, follower, producer, "policy", time.time)
    await state.start()
    audit, _ = in_memory_audit("policy")
    audit.start()
    engine = PolicyEngine(bundle, state=ledger)
    return PolicyDecisions(engine, audit, PolicyMetrics(CollectorRegistry()), state), follower


async def test_the_count_survives_a_policy_restart(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    ctx = RequestContext(session_id="s1", tenant=tenant)
    bundle = policy([{"state": {"count": "pay", "per": "tenant", "window": "1d", "lte": 2}}])
    first, follower = await open_policy(kafka, producer, bundle)
    try:
        assert (await first.decide("pay", {}, ctx, "s1:0:0")).decision == "allow"
        assert (await first.decide("pay", {}, ctx, "s1:1:0")).decision == "allow"
    finally:
        await follower.stop()
    # A new process: it knows only what the topic holds.
    second, follower = await open_policy(kafka, producer, bundle)
    try:
        assert (await second.decide("pay", {}, ctx, "s1:2:0")).decision == "deny"
        # The approved re-send of a call already counted is not a new call.
        assert (await second.decide("pay", {}, ctx, "s1:1:0")).decision == "allow"
    finally:
        await follower.stop()
