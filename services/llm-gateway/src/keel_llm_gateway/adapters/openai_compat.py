"""OpenAI-compatible chat completions over HTTP (OpenAI, vLLM, llama.cpp server, Ollama, ...),
whole or streamed.

The API key stays in this module: it goes into the Authorization header and nowhere else. Error
messages are scrubbed of it (and of credentials in the base URL) because upstreams echo keys
back ("Incorrect API key provided: sk-...") and transport errors quote the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr

from keel_contracts.errors import InvalidArgument, KeelError, Unavailable
from keel_llm_gateway.adapters.http1 import Http1Client, HttpError, HttpTimeout
from keel_llm_gateway.adapters.openai_stream import StreamAssembler
from keel_llm_gateway.adapters.tool_names import ToolNames
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)

# Client errors that say "not now" rather than "never": retrying may help.
RETRYABLE_4XX = frozenset({408, 409, 429})
COMPLETIONS = "chat/completions"


class OpenAICompatProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        default_model: str,
        timeout_s: float,
        *,
        name: str = "openai",
    ) -> None:
        self.name = name
        headers = {}
        if api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._secrets = _secrets_of(api_key, base_url)
        self._default_model = default_model
        self._client = Http1Client(base_url, headers=headers, timeout_s=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, request: CompletionRequest) -> Completion:
        names = ToolNames(t.name for t in request.tools)
        body = request_body(request, request.model or self._default_model, names)
        try:
            response = await self._client.post(COMPLETIONS, json.dumps(body).encode())
            if response.status >= 400:
                raise _http_error(response.status, response.reason, response.text)
            try:
                return parse_response(response.json(), body["model"], self.name, names)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise Unavailable(f"model provider sent a malformed response: {exc}") from exc
        except (HttpError, KeelError) as exc:
            raise self._scrubbed(exc) from None

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        names = ToolNames(t.name for t in request.tools)
        body = request_body(request, request.model or self._default_model, names)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        assembler = StreamAssembler(body["model"], self.name, names)
        try:
            async with self._client.stream(COMPLETIONS, json.dumps(body).encode()) as response:
                if response.status >= 400:
                    text = (await response.aread()).decode("utf-8", "replace")
                    raise _http_error(response.status, response.reason, text)
                async for line in response.aiter_lines():
                    try:
                        delta = assembler.feed_line(line)
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        raise Unavailable(f"model provider sent a malformed event: {exc}") from exc
                    if delta:
                        yield TextDelta(content=delta)
                    if assembler.done:
                        break
        except (HttpError, KeelError) as exc:
            raise self._scrubbed(exc) from None
        yield assembler.completion()

    def _scrubbed(self, exc: Exception) -> KeelError:
        """The error as a Keel error whose message holds no credential."""
        if isinstance(exc, HttpTimeout):
            error: KeelError = Unavailable(f"model provider timed out ({exc})")
        elif isinstance(exc, HttpError):
            error = Unavailable(f"model provider unreachable: {exc}")
        else:
            error = exc if isinstance(exc, KeelError) else Unavailable(str(exc))
        text = str(error)
        for secret in self._secrets:
            text = text.replace(secret.get_secret_value(), "[redacted]")
        return type(error)(text)


def _secrets_of(api_key: SecretStr, base_url: str) -> tuple[SecretStr, ...]:
    """The key, and a password or token written into the base URL (``https://u:p@host``)."""
    secrets = [api_key.get_secret_value()]
    userinfo = re.match(r"[a-z][a-z0-9+.-]*://([^/@]+)@", base_url, re.IGNORECASE)
    if userinfo:
        _, colon, password = userinfo.group(1).partition(":")
        secrets.append(password if colon else userinfo.group(1))
    # Longest first, so a key is not half-replaced by a shorter secret inside it.
    kept = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    return tuple(SecretStr(s) for s in kept)


def request_body(
    request: CompletionRequest, model: str, names: ToolNames | None = None
) -> dict[str, Any]:
    names = names or ToolNames(t.name for t in request.tools)
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message_to_wire(m, names) for m in request.messages],
        "temperature": request.temperature,
    }
    if request.seed is not None:
        body["seed"] = request.seed  # best-effort determinism where the upstream supports it
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


def _http_error(status: int, reason: str, text: str) -> Exception:
    message = f"model provider answered HTTP {status}: {_upstream_message(text, reason)}"
    if status >= 500 or status in RETRYABLE_4XX:
        return Unavailable(message)
    return InvalidArgument(message)


def _upstream_message(text: str, reason: str) -> str:
    """The upstream's own error message (OpenAI shape: {"error": {"message": ...}})."""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or reason
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return json.dumps(data)[:500]
