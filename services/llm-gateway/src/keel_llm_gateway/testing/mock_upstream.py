"""A small, fast OpenAI-compatible HTTP server (``POST .../chat/completions``, whole or
``stream: true``), for tests and the gateway benchmark.

Raw asyncio rather than a web framework so it costs the benchmark as little CPU as possible:
HTTP/1.1 keep-alive, Content-Length bodies in, Content-Length or chunked (SSE) out.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MockOpenAIUpstream:
    """Answers ``reply_text`` (or a call of ``tool_call = (name, arguments_json)``), with
    usage, after ``delay_s``; or ``status`` with ``error_message`` when status >= 400.
    ``seen`` keeps each request's headers and JSON body when ``record`` is set."""

    reply_text: str = "ok"
    tool_call: tuple[str, str] | None = None
    status: int = 200
    error_message: str = "upstream error"
    delay_s: float = 0.0
    model: str = "mock-model"
    record: bool = True
    seen: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    port: int = 0
    connections_opened: int = 0
    _server: asyncio.Server | None = None
    _connections: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        self.connections_opened += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request on a kept-alive connection; False when the client is gone."""
        line = await reader.readline()
        if not line:
            return False
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body_bytes = await reader.readexactly(int(headers.get("content-length", "0")))
        body: dict[str, Any] = json.loads(body_bytes) if body_bytes else {}
        if self.record:
            self.seen.append((headers, body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status >= 400:
            payload = json.dumps({"error": {"message": self.error_message}}).encode()
            _write_whole(writer, self.status, payload)
        elif body.get("stream"):
            _write_stream(writer, self._events(body))
        else:
            _write_whole(writer, 200, json.dumps(self._whole(body)).encode())
        await writer.drain()
        return headers.get("connection", "").lower() != "close"

    def _usage(self) -> dict[str, int]:
        return {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}

    def _whole(self, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.reply_text}
        finish = "stop"
        if self.tool_call is not None:
            name, arguments = self.tool_call
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            }
            finish = "tool_calls"
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self._usage(),
        }

    def _events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        model = body.get("model") or self.model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {"id": "chatcmpl-mock", "model": model, "choices": [choice]}

        events = [chunk({"role": "assistant", "content": ""})]
        if self.tool_call is not None:
            name, arguments = self.tool_call
            half = len(arguments) // 2
            first = {"index": 0, "id": "call_1", "type": "function"}
            events.append(
                chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
            )
            for part in (arguments[:half], arguments[half:]):
                piece = {"index": 0, "function": {"arguments": part}}
                events.append(chunk({"tool_calls": [piece]}))
            events.append(chunk({}, "tool_calls"))
        else:
            words = self.reply_text.split(" ")
            for index, word in enumerate(words):
                events.append(chunk({"content": word if index == 0 else " " + word}))
            events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage: dict[str, Any] = {
                "id": "chatcmpl-mock",
                "model": model,
                "choices": [],
                "usage": self._usage(),
            }
            events.append(usage)
        return events


def _write_whole(writer: asyncio.StreamWriter, status: int, payload: bytes) -> None:
    writer.write(
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )


def _write_stream(writer: asyncio.StreamWriter, events: list[dict[str, Any]]) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for event in [*(json.dumps(e) for e in events), "[DONE]"]:
        data = f"data: {event}\n\n".encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    writer.write(b"0\r\n\r\n")
