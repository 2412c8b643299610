"""The approval service's real composition root, fed generated records on the topics it reads:
``keel.approval.requests`` (its consumer: handled or dead-lettered with a reason) and
``keel.approval.decisions`` and ``keel.approval.intents`` (its followers: every record applied
or skipped, never a failure).
Afterwards a valid request still reaches the book and the gRPC health check answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel_approval.app import SERVICE, ApprovalParts, build
from keel_approval.config import Settings
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalIntended,
    ApprovalRequested,
    ApprovalVoted,
    Envelope,
)
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_INTENTS, APPROVAL_REQUESTS
from tests.fuzz.harness import DRAWS_PER_EXAMPLE, FUZZ, FuzzRuntime, feed, still_serving
from tests.fuzz.strategies import record_values

# A failing batch is big; hypothesis warns that printing it is slow, and that warning must not
# hide the failure itself.
pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

TOPICS = {
    APPROVAL_REQUESTS: (ApprovalRequested,),
    APPROVAL_DECISIONS: (ApprovalDecided, ApprovalVoted),
    APPROVAL_INTENTS: (ApprovalIntended,),
}


@contextlib.asynccontextmanager
async def approval() -> AsyncIterator[tuple[FuzzRuntime, ApprovalParts]]:
    settings = Settings(web_enabled=False)
    runtime = FuzzRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    async with runtime.running():
        yield runtime, parts


async def still_serves(runtime: FuzzRuntime, parts: ApprovalParts) -> None:
    assert runtime.pumps_alive()
    request = ApprovalRequested(
        approval_id="canary",
        agent_id="a",
        tool_name="send_email",
        arguments={"to": "bob"},
        idempotency_key="canary:0",
    )
    await runtime.producer.publish(
        APPROVAL_REQUESTS, Envelope.wrap(request, source="t", session_id="canary-session")
    )
    await runtime.settle()
    assert parts.book.get("canary").tool_name == "send_email"
    assert await still_serving(runtime.target)


@pytest.mark.parametrize("topic", list(TOPICS))
def test_every_record_on_a_consumed_topic_is_handled_or_dead_lettered(topic: str) -> None:
    values = record_values(TOPICS[topic])
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        runtime, parts = runner.run(stack.enter_async_context(approval()))
        try:

            @FUZZ
            @given(st.lists(values, min_size=DRAWS_PER_EXAMPLE, max_size=DRAWS_PER_EXAMPLE))
            def fuzz(draws: list[list[bytes | None]]) -> None:
                batch = [value for draw in draws for value in draw]
                follower = topic in (APPROVAL_DECISIONS, APPROVAL_INTENTS)
                runner.run(feed(runtime, topic, batch, follower=follower))

            fuzz()
            runner.run(still_serves(runtime, parts))
        finally:
            runner.run(stack.aclose())
