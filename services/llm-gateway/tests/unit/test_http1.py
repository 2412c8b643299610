"""The small HTTP/1.1 client against raw servers: reuse, stale connections, framings, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from keel_llm_gateway.adapters.http1 import Http1Client, HttpError, HttpTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


@dataclass
class Server:
    """Reads requests (Content-Length bodies) and lets ``handler`` answer; counts connections.
    The handler returns whether to keep the connection open."""

    handler: Handler
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.requests.append(head + await reader.readexactly(length))
                if not await self.handler(reader, writer, head):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        servers.append(listening)
        return server

    yield start
    for listening in servers:
        listening.close()


def ok(body: bytes, keep: bool = True) -> Handler:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        return keep

    return handler


async def test_connections_are_kept_alive_and_reused(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(ok(b'{"a": 1}'))
    client = Http1Client(
        f"http://127.0.0.1:{server.port}/v1", headers={"Authorization": "Bearer k"}, timeout_s=2
    )
    for _ in range(3):
        response = await client.post("chat/completions", b"{}")
        assert (response.status, response.json()) == (200, {"a": 1})
    await client.aclose()
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert "Authorization: Bearer k\r\n" in first
    assert f"Host: 127.0.0.1:{server.port}\r\n" in first


async def test_a_connection_the_server_closed_is_replaced_transparently(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(ok(b"done", keep=False))  # answers, then hangs up without saying so
    client = Http1Client(f"http://127.0.0.1:{server.port}", headers={}, timeout_s=2)
    assert (await client.post("x", b"1")).body == b"done"
    await asyncio.sleep(0.05)
    assert (await client.post("x", b"2")).body == b"done"
    await client.aclose()
    assert server.connections == 2


async def test_chunked_bodies_stream_line_by_line(serve: Callable[..., Awaitable[Server]]) -> None:
    async def chunked(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"data: one\n\nda", b"ta: two\r\n\r\n", b"data: [DONE]\n\n"):
            writer.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\nTrailer: x\r\n\r\n")
        await writer.drain()
        return True

    server = await serve(chunked)
    client = Http1Client(f"http://127.0.0.1:{server.port}", headers={}, timeout_s=2)
    for _ in range(2):  # read to the end: the connection is reused
        async with client.stream("s", b"{}") as response:
            lines = [line async for line in response.aiter_lines()]
        assert [x for x in lines if x] == ["data: one", "data: two", "data: [DONE]"]
    await client.aclose()
    assert server.connections == 1


async def test_a_body_without_length_is_read_to_the_end(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def eof(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.0 503 Busy\r\nContent-Type: text/plain\r\n\r\ntry later")
        await writer.drain()
        return False

    server = await serve(eof)
    client = Http1Client(f"http://127.0.0.1:{server.port}", headers={}, timeout_s=2)
    response = await client.post("x", b"{}")
    assert (response.status, response.reason, response.text) == (503, "Busy", "try later")
    await client.aclose()


async def test_time_limit_and_refused_connections(serve: Callable[..., Awaitable[Server]]) -> None:
    async def silent(_: asyncio.StreamReader, __: asyncio.StreamWriter, ___: bytes) -> bool:
        await asyncio.sleep(5)
        return False

    server = await serve(silent)
    client = Http1Client(f"http://127.0.0.1:{server.port}", headers={}, timeout_s=0.1)
    with pytest.raises(HttpTimeout, match="within 0.1s"):
        await client.post("x", b"{}")
    await client.aclose()
    refused = Http1Client("http://127.0.0.1:1", headers={}, timeout_s=1)
    with pytest.raises(HttpError):
        await refused.post("x", b"{}")


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Http1Client("ftp://example.com", headers={}, timeout_s=1)


async def test_userinfo_becomes_basic_auth(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(ok(b"{}"))
    client = Http1Client(f"http://u:p%40ss@127.0.0.1:{server.port}", headers={}, timeout_s=2)
    await client.post("x", b"{}")
    await client.aclose()
    assert b"Authorization: Basic dTpwQHNz\r\n" in server.requests[0]  # u:p@ss
