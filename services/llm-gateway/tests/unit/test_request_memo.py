"""A session sends its whole history and catalog at every step: the gateway parses each message
and tool spec once per distinct wire form (``handlers/mapping.py``) and shares the frozen models,
so what is derived from them (a tool's canonical JSON) is made once too — without changing what
any request means."""

from __future__ import annotations

import json

import pytest

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2
from keel_contracts.errors import InvalidArgument
from keel_llm_gateway.domain.cache import cache_key
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, ToolSpec
from keel_llm_gateway.handlers.mapping import request_from_proto

SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}


def _step(turns: int, tenant: str = "acme") -> llm_pb2.CompleteRequest:
    """The request a session sends after ``turns`` tool calls, built anew as a client does."""
    messages = [common_pb2.ChatMessage(role="user", content="read the file")]
    for turn in range(turns):
        call = common_pb2.ToolCall(id=f"c{turn}", name="read", arguments_json='{"path": "a"}')
        messages.append(common_pb2.ChatMessage(role="assistant", tool_calls=[call]))
        messages.append(common_pb2.ChatMessage(role="tool", content="42", tool_call_id=f"c{turn}"))
    tool = llm_pb2.ToolSpec(name="read", description="d", parameters_json_schema=json.dumps(SCHEMA))
    return llm_pb2.CompleteRequest(
        messages=messages, tools=[tool], context=common_pb2.RequestContext(tenant=tenant)
    )


def _from_scratch(request: llm_pb2.CompleteRequest) -> CompletionRequest:
    """What the request means, parsed without any memo."""
    parsed = request_from_proto(request)
    return parsed.model_copy(
        update={
            "messages": tuple(ChatMessage.model_validate(m.model_dump()) for m in parsed.messages),
            "tools": tuple(ToolSpec.model_validate(t.model_dump()) for t in parsed.tools),
        }
    )


def test_the_history_and_catalog_sent_again_are_the_same_models() -> None:
    first, second = request_from_proto(_step(2)), request_from_proto(_step(3))
    assert second.tools[0] is first.tools[0]
    assert all(a is b for a, b in zip(first.messages, second.messages, strict=False))
    assert second.messages[-1] is not first.messages[-1]


def test_a_shared_request_means_what_it_says() -> None:
    """The same fields, the same cache key, whatever the memo holds; the tenant is the
    request's own, never a shared model's."""
    request_from_proto(_step(3, tenant="acme"))
    request = request_from_proto(_step(3, tenant="globex"))
    scratch = _from_scratch(_step(3, tenant="globex"))
    assert request == scratch
    assert request.scope.tenant == "globex"
    assert cache_key(request, "m") == cache_key(scratch, "m")
    assert cache_key(request, "m") != cache_key(request_from_proto(_step(3, tenant="acme")), "m")


def test_a_refused_tool_is_refused_every_time() -> None:
    bad = llm_pb2.CompleteRequest(
        messages=[common_pb2.ChatMessage(role="user", content="x")],
        tools=[llm_pb2.ToolSpec(name="t", parameters_json_schema="{not json")],
    )
    for _ in range(2):
        with pytest.raises(InvalidArgument, match="not JSON"):
            request_from_proto(bad)


def test_a_refused_message_is_refused_every_time() -> None:
    bad = llm_pb2.CompleteRequest(messages=[common_pb2.ChatMessage(role="root", content="x")])
    for _ in range(2):
        with pytest.raises(InvalidArgument, match="role"):
            request_from_proto(bad)
