"""The memory service as a real process (the session's stack): a tenant's stored memory never
comes back to another tenant asking the same question."""

from __future__ import annotations

import uuid

import pytest

from keel_cli.stack import LocalStack
from keel_clients import CallOptions, MemoryClient, open_channel
from keel_contracts.chat import RequestContext

pytestmark = pytest.mark.stack


async def test_a_tenants_memory_never_reaches_another_tenant(stack: LocalStack) -> None:
    secret = f"the acme vault code is {uuid.uuid4().hex[:8]}"
    acme = RequestContext(session_id=f"s-{uuid.uuid4().hex[:8]}", tenant="acme")
    globex = RequestContext(session_id=f"s-{uuid.uuid4().hex[:8]}", tenant="globex")
    async with open_channel(stack.target("memory")) as channel:
        memory = MemoryClient(channel, CallOptions(timeout_s=30))
        for memory_type in ("episodic", "semantic", "procedural"):
            await memory.store(acme, secret, memory_type)
        stolen = await memory.retrieve(globex, secret, 2000, top_k=50)
        default = await memory.retrieve(RequestContext(), secret, 2000, top_k=50)
        own = await memory.retrieve(acme, secret, 2000, top_k=50)
        forgotten = await memory.forget(globex, session_id=acme.session_id)
    assert [hit for hit in stolen if secret in hit.content] == []
    assert [hit for hit in default if secret in hit.content] == []
    assert sorted(hit.type for hit in own if hit.content == secret) == [
        "episodic",
        "procedural",
        "semantic",
    ]
    assert forgotten == 0
