"""Checking a provider's answer against the request's tools, and what to ask on a retry.

Applied by the gateway to every provider's completion, so a weak model behind an
OpenAI-compatible API gets the same treatment as the local one: tool calls written as text are
turned into real calls, and calls with unknown names or arguments that do not fit the tool's
schema earn one retry with the reason shown to the model.
"""

from __future__ import annotations

import json

from keel_llm_gateway.domain.models import ChatMessage, Completion, CompletionRequest
from keel_llm_gateway.domain.output_parsing import (
    MalformedOutput,
    correction_messages,
    parse_model_output,
    validate_tool_calls,
)


def checked(completion: Completion, request: CompletionRequest) -> Completion:
    """The completion with text tool calls parsed; raises ``MalformedOutput`` when it cannot
    be used as it is. A request without tools is never checked."""
    if not request.tools:
        return completion
    message = completion.message
    if message.tool_calls:
        validate_tool_calls(message.tool_calls, request.tools)
        return completion
    parsed = parse_model_output(message.content, request.tools)
    if not parsed.tool_calls:
        return completion
    repaired = ChatMessage(role="assistant", content=parsed.content, tool_calls=parsed.tool_calls)
    return completion.model_copy(update={"message": repaired, "finish_reason": "tool_calls"})


def retry_request(
    request: CompletionRequest, completion: Completion, error: MalformedOutput
) -> CompletionRequest:
    """The request again, with the faulty answer (as text: a dangling native tool call would be
    refused by OpenAI-style APIs) and the reason appended."""
    raw = completion.message.content
    if completion.message.tool_calls:
        raw = json.dumps(
            [
                {"name": call.name, "arguments": call.arguments_json}
                for call in completion.message.tool_calls
            ]
        )
    extra = correction_messages(raw, error)
    return request.model_copy(update={"messages": (*request.messages, *extra)})
