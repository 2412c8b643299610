"""Per-model rate limits as the LLM gateway wires them: Complete and CompleteStream share the
requested model's bucket (``-`` when the model is left to routing); past it a call is refused
RESOURCE_EXHAUSTED with a retry-after before any provider is asked."""

from __future__ import annotations

import grpc
import pytest

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_core.grpc import insecure_channel
from keel_core.ratelimit import Limit, RateLimitSettings
from keel_core.testing import InMemoryRuntime
from keel_llm_gateway.app import SERVICE, build
from keel_llm_gateway.config import DEMO_SCENARIOS, Settings

REQUEST = llm_pb2.CompleteRequest(
    context=common_pb2.RequestContext(session_id="s1", agent_id="a1", tenant="acme"),
    messages=[common_pb2.ChatMessage(role="user", content="What is (17 * 23) + 4?")],
)


async def test_the_routed_model_past_its_burst_is_refused() -> None:
    settings = Settings(
        provider="scripted",
        scenario_file=DEMO_SCENARIOS,
        rate_limits=RateLimitSettings(limits={"model:-": Limit(rate=0.01, burst=2)}),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = llm_pb2_grpc.LLMGatewayStub(channel)
        answered = await stub.Complete(REQUEST, timeout=5)
        chunks = [chunk async for chunk in stub.CompleteStream(REQUEST, timeout=5)]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Complete(REQUEST, timeout=5)
    assert answered.provider == "scripted"
    assert chunks
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # 100 s for the next token, less what passed since the first call.
    assert 90 <= int(dict(refused.value.trailing_metadata() or ())["retry-after"]) <= 100
    assert "model '-'" in (refused.value.details() or "")
    completions = runtime.registry.get_sample_value(
        "keel_grpc_server_handled_total",
        {"method": "/keel.llm.v1.LLMGateway/Complete", "code": "OK"},
    )
    assert completions == 1.0
