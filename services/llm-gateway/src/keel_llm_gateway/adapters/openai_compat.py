"""OpenAI-compatible chat completions over HTTP (OpenAI, vLLM, llama.cpp server, Ollama, ...).

The API key stays in this module: it goes into the Authorization header and nowhere else (not
into errors, logs or audit records).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import SecretStr

from keel_core.errors import InvalidArgument, Unavailable
from keel_llm_gateway.adapters.tool_names import ToolNames
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ToolCall,
    Usage,
)

# Client errors that say "not now" rather than "never": retrying may help.
RETRYABLE_4XX = frozenset({408, 409, 429})


class OpenAICompatProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        default_model: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._default_model = default_model
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, request: CompletionRequest) -> Completion:
        names = ToolNames(t.name for t in request.tools)
        body = request_body(request, request.model or self._default_model, names)
        try:
            response = await self._client.post("chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"model provider timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"model provider unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _http_error(response)
        try:
            return parse_response(response.json(), body["model"], self.name, names)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise Unavailable(f"model provider sent a malformed response: {exc}") from exc


def request_body(
    request: CompletionRequest, model: str, names: ToolNames | None = None
) -> dict[str, Any]:
    names = names or ToolNames(t.name for t in request.tools)
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message_to_wire(m, names) for m in request.messages],
        "temperature": request.temperature,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": names.to_wire(t.name),
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    if request.max_tokens:
        body["max_tokens"] = request.max_tokens
    return body


def _message_to_wire(message: ChatMessage, names: ToolNames) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": names.to_wire(call.name), "arguments": call.arguments_json},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    if message.name:
        wire["name"] = names.to_wire(message.name) if message.role == "tool" else message.name
    return wire


def parse_response(
    data: dict[str, Any], requested_model: str, provider: str, names: ToolNames | None = None
) -> Completion:
    names = names or ToolNames(())
    choice = data["choices"][0]
    wire = choice["message"]
    calls = tuple(
        ToolCall(
            id=call.get("id") or f"call_{index}",
            name=names.from_wire(call["function"]["name"]),
            arguments_json=call["function"].get("arguments") or "{}",
        )
        for index, call in enumerate(wire.get("tool_calls") or [])
    )
    usage = data.get("usage")
    return Completion(
        message=ChatMessage(role="assistant", content=wire.get("content") or "", tool_calls=calls),
        model=data.get("model") or requested_model,
        provider=provider,
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
        if usage
        else None,
        finish_reason=choice.get("finish_reason") or ("tool_calls" if calls else "stop"),
    )


def _http_error(response: httpx.Response) -> Exception:
    message = _upstream_message(response)
    text = f"model provider answered HTTP {response.status_code}: {message}"
    if response.status_code >= 500 or response.status_code in RETRYABLE_4XX:
        return Unavailable(text)
    return InvalidArgument(text)


def _upstream_message(response: httpx.Response) -> str:
    """The upstream's own error message (OpenAI shape: {"error": {"message": ...}})."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return json.dumps(data)[:500]
