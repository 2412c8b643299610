"""The gateway checks answers against the request's tools and retries once with the reason."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ToolCall,
    ToolSpec,
    Usage,
)
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import FakeProvider, text_completion
from keel_llm_gateway.usecases.gateway import Gateway

CALC = ToolSpec(
    name="calculator",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)
ASK = CompletionRequest(
    messages=(ChatMessage(role="user", content="What is 6 * 7?"),), tools=(CALC,)
)
USAGE = Usage(prompt_tokens=10, completion_tokens=5)


def native(arguments: str) -> Completion:
    call = ToolCall(id="c1", name="calculator", arguments_json=arguments)
    return Completion(
        message=ChatMessage(role="assistant", tool_calls=(call,)),
        model="m",
        provider="fake",
        usage=USAGE,
        finish_reason="tool_calls",
    )


def setup(*replies: Completion | str) -> tuple[Gateway, FakeProvider, CollectorRegistry]:
    provider = FakeProvider(replies=replies)
    registry = CollectorRegistry()
    return Gateway.single(provider, {}, observer=LLMMetrics(registry)), provider, registry


async def test_a_tool_call_written_as_text_becomes_a_real_call() -> None:
    text = '```json\n{"name": "calculator", "arguments": {"expression": "6 * 7"}}\n```'
    gateway, provider, _ = setup(text_completion(text, usage=USAGE))
    completion = await gateway.complete(ASK)
    [call] = completion.message.tool_calls
    assert json.loads(call.arguments_json) == {"expression": "6 * 7"}
    assert completion.finish_reason == "tool_calls"
    assert len(provider.requests) == 1


async def test_invalid_arguments_are_retried_once_with_the_reason() -> None:
    gateway, provider, registry = setup(
        native('{"expr": "6 * 7"}'), native('{"expression": "6*7"}')
    )
    completion = await gateway.complete(ASK)
    assert json.loads(completion.message.tool_calls[0].arguments_json) == {"expression": "6*7"}
    retry = provider.requests[1]
    assert retry.messages[-2].role == "assistant"
    assert retry.messages[-2].tool_calls == ()  # sent as text: no dangling native call
    assert "expr" in retry.messages[-2].content
    assert "'expression' is a required property" in retry.messages[-1].content
    assert completion.usage == Usage(prompt_tokens=20, completion_tokens=10)  # both calls
    assert registry.get_sample_value("keel_llm_output_repairs_total", {"outcome": "fixed"}) == 1


async def test_a_second_bad_answer_is_returned_as_it_is() -> None:
    gateway, provider, registry = setup(native("{}"), native('{"nope": 1}'))
    completion = await gateway.complete(ASK)
    assert completion.message.tool_calls[0].arguments_json == '{"nope": 1}'
    assert len(provider.requests) == 2
    assert registry.get_sample_value("keel_llm_output_repairs_total", {"outcome": "failed"}) == 1


async def test_requests_without_tools_are_not_checked() -> None:
    gateway, provider, _ = setup('{"name": "calculator", "arguments": {}}')
    plain = CompletionRequest(messages=ASK.messages)
    assert (await gateway.complete(plain)).message.content.startswith("{")
    assert len(provider.requests) == 1


async def test_providers_outside_the_repair_set_are_passed_through() -> None:
    from keel_core.resilience.breaker import CircuitBreaker
    from keel_llm_gateway.domain.routing import Router, Target
    from keel_llm_gateway.usecases.fallback import ChainCaller
    from keel_llm_gateway.usecases.gateway import GatewayOptions
    from keel_llm_gateway.usecases.observer import NullObserver

    script = FakeProvider("script", [native("{}")])
    breaker = CircuitBreaker("script", failure_threshold=9, reset_timeout_s=1)
    gateway = Gateway(
        router=Router.single(Target(provider="script")),
        chain=ChainCaller({"script": script}, {"script": breaker}, NullObserver()),
        prices={},
        options=GatewayOptions(repair_providers=frozenset({"openai"})),
    )
    completion = await gateway.complete(ASK)
    assert completion.message.tool_calls[0].arguments_json == "{}"  # as scripted
    assert len(script.requests) == 1


def test_by_default_only_openai_compatible_providers_are_repaired() -> None:
    from keel_llm_gateway.config import ProviderConfig, Settings
    from keel_llm_gateway.factory import repairing_providers

    settings = Settings(
        provider="scripted",
        providers={
            "big": ProviderConfig(kind="openai"),
            "strict-script": ProviderConfig(kind="scripted", repair=True),
            "local": ProviderConfig(kind="local"),
        },
    )
    assert repairing_providers(settings) == {"big", "strict-script"}
