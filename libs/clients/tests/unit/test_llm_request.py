"""A request built from remembered conversions is the request built from scratch, and owns
its messages (changing one request never reaches the next)."""

from __future__ import annotations

from keel.llm.v1 import llm_pb2
from keel_clients.llm import CompletionOptions, _request
from keel_clients.mapping import context_to_proto, message_to_proto, spec_to_proto
from keel_contracts.chat import ChatMessage, RequestContext, ToolCall, ToolSpec

CTX = RequestContext(session_id="s1", agent_id="a", tenant="t")
HISTORY = [
    ChatMessage(role="system", content="be brief"),
    ChatMessage(role="user", content="add 2 and 2"),
    ChatMessage(
        role="assistant", tool_calls=(ToolCall(id="c1", name="add", arguments_json='{"a":2}'),)
    ),
    ChatMessage(role="tool", content="4", tool_call_id="c1", name="add"),
]
TOOLS = [ToolSpec(name="add", description="adds", parameters_json_schema='{"type":"object"}')]


def from_scratch() -> llm_pb2.CompleteRequest:
    return llm_pb2.CompleteRequest(
        context=context_to_proto(CTX),
        messages=[message_to_proto(m) for m in HISTORY],
        tools=[spec_to_proto(t) for t in TOOLS],
    )


def test_a_request_equals_one_converted_from_scratch_every_time() -> None:
    for _ in range(3):
        assert _request(CTX, HISTORY, TOOLS, CompletionOptions()) == from_scratch()


def test_a_request_changed_after_it_was_built_does_not_change_the_next() -> None:
    first = _request(CTX, HISTORY, TOOLS, CompletionOptions())
    first.messages[1].content = "something else"
    first.tools[0].name = "rm"
    assert _request(CTX, HISTORY, TOOLS, CompletionOptions()) == from_scratch()
