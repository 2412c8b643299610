"""The policy service's real composition root, fed generated records on the topics it reads:
``keel.policy.lists`` (its table of named-list items) and ``keel.policy.state`` (its follower
of running totals). A record that is not what it should be is skipped, never a crash and
never a widened permission: afterwards a known payee is still allowed, an unknown one denied,
and the gRPC health check answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.events import PolicyListItem, PolicyStateReserved
from keel_contracts.topics import POLICY_LISTS, POLICY_STATE
from keel_core.grpc import insecure_channel
from keel_policy.app import SERVICE, PolicyParts, build
from keel_policy.config import Settings
from tests.fuzz.harness import DRAWS_PER_EXAMPLE, FUZZ, FuzzRuntime, feed, still_serving
from tests.fuzz.strategies import record_values

pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

TOPICS = {POLICY_LISTS: (PolicyListItem,), POLICY_STATE: (PolicyStateReserved,)}

POLICY = """
lists:
  payees: {items: [alice], topic: true}
rules:
  - id: pay-known-payee
    tool: pay
    decision: allow
    when:
      - path: to
        in: $lists.payees
      - state: {count: pay, per: tenant, window: 1d, lte: 1000000}
"""


@contextlib.asynccontextmanager
async def policy(directory: Path) -> AsyncIterator[tuple[FuzzRuntime, PolicyParts]]:
    policy_file = directory / "policy.yaml"
    policy_file.write_text(POLICY)
    settings = Settings(policy_file=policy_file, reload_interval_s=0, lists_refresh_s=0)
    runtime = FuzzRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    async with runtime.running():
        yield runtime, parts


async def decision(target: str, to: str, key: str) -> str:
    async with insecure_channel(target) as channel:
        reply = await policy_pb2_grpc.PolicyServiceStub(channel).Evaluate(
            policy_pb2.EvaluateRequest(
                context=common_pb2.RequestContext(session_id="canary", tenant="acme"),
                tool_name="pay",
                arguments_json=f'{{"to": "{to}"}}',
                idempotency_key=key,
            )
        )
    return policy_pb2.Decision.Name(reply.decision)


async def still_decides(runtime: FuzzRuntime, parts: PolicyParts) -> None:
    assert runtime.pumps_alive()
    parts.lists.refresh()
    assert await decision(runtime.target, "alice", "canary:1") == "DECISION_ALLOW"
    # No generated record names this payee: it stays unknown whatever was fed.
    assert await decision(runtime.target, "mallory-canary", "canary:2") == "DECISION_DENY"
    assert await still_serving(runtime.target)


@pytest.mark.parametrize("topic", list(TOPICS))
def test_every_record_on_a_policy_topic_is_applied_or_skipped(topic: str, tmp_path: Path) -> None:
    values = record_values(TOPICS[topic])
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        runtime, parts = runner.run(stack.enter_async_context(policy(tmp_path)))
        try:

            @FUZZ
            @given(st.lists(values, min_size=DRAWS_PER_EXAMPLE, max_size=DRAWS_PER_EXAMPLE))
            def fuzz(draws: list[list[bytes | None]]) -> None:
                batch = [value for draw in draws for value in draw]
                if topic == POLICY_STATE:
                    runner.run(feed(runtime, topic, batch, follower=True))
                else:  # a table, not a consumer: each item is taken or skipped when read
                    for i, value in enumerate(batch):
                        runtime.bus.append(topic, value, f"payees:k{i % 7}", [])
                    runner.run(runtime.settle(timeout_s=15))
                    parts.lists.refresh()

            fuzz()
            runner.run(still_decides(runtime, parts))
        finally:
            runner.run(stack.aclose())
