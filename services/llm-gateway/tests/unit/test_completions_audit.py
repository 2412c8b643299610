"""Where the audit record of a completion is written from: behind the answer, in the order the
answers were given (the default, ``AUDIT_SYNC=false``), or before it (``AUDIT_SYNC=true``).
A cache hit is audited either way: it is a completion a caller received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from keel_core.audit import AuditEmitter, verify_chain
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_llm_gateway.domain.cache import ResponseCache
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, Scope
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import FakeProvider
from keel_llm_gateway.usecases.completions import Completions
from keel_llm_gateway.usecases.gateway import Gateway


def ask(text: str) -> CompletionRequest:
    return CompletionRequest(
        messages=(ChatMessage(role="user", content=text),),
        scope=Scope(session_id="s-1", agent_id="agent-7", tenant="acme"),
    )


@dataclass
class Parts:
    use: Completions
    published: InMemoryPublisher
    audit: AuditEmitter


@pytest.fixture
async def parts(request: pytest.FixtureRequest) -> AsyncIterator[Parts]:
    """``Completions`` over a cached gateway and an in-memory audit; the test's
    ``background`` mark parameter says where records are written from."""
    audit, published = in_memory_audit("llm-gateway")
    audit.start()
    metrics = LLMMetrics(CollectorRegistry())
    gateway = Gateway.single(
        FakeProvider(replies=["4"]), {}, cache=ResponseCache(max_entries=8, ttl_s=60)
    )
    use = Completions(gateway, audit, metrics, audit_in_background=request.param)
    yield Parts(use, published, audit)
    await use.drain()
    await audit.close()


background = pytest.mark.parametrize("parts", [True], indirect=True)
in_line = pytest.mark.parametrize("parts", [False], indirect=True)


@background
async def test_a_hit_is_answered_before_its_record_is_written_and_then_audited(
    parts: Parts,
) -> None:
    use, published = parts.use, parts.published
    miss = await use.complete(ask("2 + 2?"), trace="t-1")
    hit = await use.complete(ask("2 + 2?"), trace="t-2")
    assert (miss.cached, hit.cached) == (False, True)
    assert published.audit_records() == []  # both answered; nothing written yet
    await use.drain()
    records = published.audit_records()
    assert [r.details["cached"] for r in records] == [False, True]
    assert [r.sequence for r in records] == [0, 1]
    assert verify_chain(records) is None
    assert records[1].details["tenant"] == "acme"
    assert records[1].details["cost_usd"] == 0.0


@background
async def test_records_keep_the_order_of_the_answers_across_bursts(parts: Parts) -> None:
    use, published = parts.use, parts.published
    for index in range(5):
        await use.complete(ask(f"{index}?"))
    await use.drain()
    await use.complete(ask("0?"))  # a hit after the queue ran dry starts a new writer
    await use.drain()
    records = published.audit_records()
    assert [r.sequence for r in records] == list(range(6))
    assert [r.details["cached"] for r in records] == [False] * 5 + [True]


@in_line
async def test_with_audit_sync_every_answer_waits_for_its_record(parts: Parts) -> None:
    use, published = parts.use, parts.published
    await use.complete(ask("2 + 2?"))
    await use.complete(ask("2 + 2?"))
    assert [r.details["cached"] for r in published.audit_records()] == [False, True]
