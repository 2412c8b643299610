"""The LLM gateway's real composition root on an in-memory runtime: the scripted provider from
the settings, the response cache, metrics and audit, behind a real gRPC server on loopback."""

from __future__ import annotations

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_contracts.events import AuditRecord
from keel_contracts.topics import AUDIT
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryRuntime
from keel_llm_gateway.app import SERVICE, build
from keel_llm_gateway.config import DEMO_SCENARIOS, Settings

REQUEST = llm_pb2.CompleteRequest(
    context=common_pb2.RequestContext(session_id="s1", agent_id="a1", tenant="acme"),
    messages=[common_pb2.ChatMessage(role="user", content="What is (17 * 23) + 4?")],
    tools=[
        llm_pb2.ToolSpec(
            name="calculator", description="Arithmetic", parameters_json_schema='{"type": "object"}'
        )
    ],
)


async def test_the_built_service_answers_and_caches_a_repeated_request() -> None:
    settings = Settings(provider="scripted", scenario_file=DEMO_SCENARIOS, cache_enabled=True)
    runtime = InMemoryRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = llm_pb2_grpc.LLMGatewayStub(channel)
        first = await stub.Complete(REQUEST, timeout=5)
        second = await stub.Complete(REQUEST, timeout=5)
    assert sorted(parts.providers) == ["scripted"]
    assert first.provider == "scripted"
    assert (first.cached, second.cached) == (False, True)
    assert second.message == first.message
    cache = {
        result: runtime.registry.get_sample_value(
            "keel_llm_cache_requests_total", {"result": result}
        )
        for result in ("hit", "miss")
    }
    assert cache == {"hit": 1.0, "miss": 1.0}
    audited = [e.parse(AuditRecord) for e in runtime.bus.envelopes(AUDIT)]
    assert [(r.action, r.actor, r.details["cached"]) for r in audited] == [
        ("llm.completion", "a1", False),
        ("llm.completion", "a1", True),
    ]
    assert {r.details["tenant"] for r in audited} == {"acme"}
