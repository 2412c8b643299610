"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from keel_contracts.errors import InvalidArgument, Unavailable
from keel_llm_gateway.adapters.openai_compat import OpenAICompatProvider
from keel_llm_gateway.domain.models import (
    ChatMessage,
    CompletionRequest,
    ToolCall,
    ToolSpec,
    Usage,
)

TOOL_CALL_RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {
                            "name": "calculator",
                            "arguments": '{"expression": "17 * 23"}',
                        },
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 57, "completion_tokens": 18, "total_tokens": 75},
}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Upstream:
    """A minimal HTTP/1.1 server: records each request and answers with ``status``/``reply``
    after ``delay`` seconds (cut short when the test ends)."""

    status: int = 200
    reply: Any = field(default_factory=lambda: TOOL_CALL_RESPONSE)
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, value = line.decode().split(":", 1)
                headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            self.seen.append(Seen(method, path, headers, json.loads(raw or b"{}")))
            if self.delay:
                try:
                    await asyncio.wait_for(self._release.wait(), self.delay)
                except TimeoutError:
                    pass
            payload = self.reply if isinstance(self.reply, str) else json.dumps(self.reply)
            data = payload.encode()
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def finish(self) -> None:
        self._release.set()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = Upstream()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        await fake.finish()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def provider(upstream: Upstream) -> AsyncIterator[OpenAICompatProvider]:
    client = OpenAICompatProvider(upstream.base_url, SecretStr("sk-test"), "gpt-4o-mini", 0.5)
    try:
        yield client
    finally:
        await client.aclose()


REQUEST = CompletionRequest(
    messages=(
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="What is 17 * 23?"),
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="c0", name="clock", arguments_json="{}"),),
        ),
        ChatMessage(role="tool", content="12:00", tool_call_id="c0", name="clock"),
    ),
    tools=(
        ToolSpec(
            name="calculator",
            description="Evaluate arithmetic.",
            parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
        ),
    ),
    temperature=0.2,
    max_tokens=256,
)


async def test_request_is_sent_in_openai_shape(
    upstream: Upstream, provider: OpenAICompatProvider
) -> None:
    await provider.complete(REQUEST)
    [seen] = upstream.seen
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 17 * 23?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c0",
                        "type": "function",
                        "function": {"name": "clock", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "content": "12:00", "tool_call_id": "c0", "name": "clock"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "calculator",
                    "description": "Evaluate arithmetic.",
                    "parameters": {
                        "type": "object",
                        "properties": {"expression": {"type": "string"}},
                    },
                },
            }
        ],
    }


async def test_tool_calls_usage_and_model_are_parsed(provider: OpenAICompatProvider) -> None:
    completion = await provider.complete(REQUEST)
    assert completion.message.role == "assistant"
    assert completion.message.content == ""
    assert completion.message.tool_calls == (
        ToolCall(id="call_abc", name="calculator", arguments_json='{"expression": "17 * 23"}'),
    )
    assert completion.usage == Usage(prompt_tokens=57, completion_tokens=18)
    assert (completion.model, completion.provider) == ("gpt-4o-mini-2024-07-18", "openai")
    assert completion.finish_reason == "tool_calls"


async def test_request_model_overrides_default_and_missing_usage_stays_none(
    upstream: Upstream, provider: OpenAICompatProvider
) -> None:
    upstream.reply = {
        "choices": [{"message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}]
    }
    request = CompletionRequest(messages=(ChatMessage(role="user", content="hi"),), model="llama3")
    completion = await provider.complete(request)
    assert upstream.seen[0].body["model"] == "llama3"
    assert "tools" not in upstream.seen[0].body
    assert "max_tokens" not in upstream.seen[0].body
    assert (completion.message.content, completion.model, completion.usage) == (
        "Hi.",
        "llama3",
        None,
    )


async def test_no_key_sends_no_authorization(upstream: Upstream) -> None:
    client = OpenAICompatProvider(upstream.base_url, SecretStr(""), "m", 1.0)
    try:
        await client.complete(REQUEST)
    finally:
        await client.aclose()
    assert "authorization" not in upstream.seen[0].headers


async def test_server_error_is_unavailable_with_upstream_message(
    upstream: Upstream, provider: OpenAICompatProvider
) -> None:
    upstream.status, upstream.reply = 503, {"error": {"message": "model is loading"}}
    with pytest.raises(Unavailable, match="HTTP 503: model is loading") as caught:
        await provider.complete(REQUEST)
    assert "sk-test" not in str(caught.value)


async def test_client_error_is_invalid_argument_with_upstream_message(
    upstream: Upstream, provider: OpenAICompatProvider
) -> None:
    upstream.status = 400
    upstream.reply = {"error": {"message": "max_tokens is too large", "type": "invalid"}}
    with pytest.raises(InvalidArgument, match="HTTP 400: max_tokens is too large"):
        await provider.complete(REQUEST)


async def test_rate_limit_is_unavailable(
    upstream: Upstream, provider: OpenAICompatProvider
) -> None:
    upstream.status, upstream.reply = 429, "slow down"
    with pytest.raises(Unavailable, match="HTTP 429: slow down"):
        await provider.complete(REQUEST)


async def test_malformed_response_is_unavailable(
    upstream: Upstream, provider: OpenAICompatProvider
) -> None:
    upstream.reply = {"choices": []}
    with pytest.raises(Unavailable, match="malformed"):
        await provider.complete(REQUEST)


async def test_timeout_is_unavailable(upstream: Upstream, provider: OpenAICompatProvider) -> None:
    upstream.delay = 5.0
    with pytest.raises(Unavailable, match="timed out"):
        await provider.complete(REQUEST)


async def test_connection_refused_is_unavailable(upstream: Upstream) -> None:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = OpenAICompatProvider(f"http://127.0.0.1:{port}/v1", SecretStr("k"), "m", 1.0)
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            await client.complete(REQUEST)
    finally:
        await client.aclose()
