"""The allow-listing HTTP proxy a boxed stdio server reaches its declared hosts through.

The box has no network of its own: its namespace holds a loopback on which the launcher
relays ``127.0.0.1:<port>`` to this proxy's unix socket (outside the box, which cannot see
it), and ``HTTP(S)_PROXY`` point the server's client there. The proxy, in the gateway, decides:

- ``CONNECT host:port`` (HTTPS and any TLS) and absolute-form requests
  (``GET http://host:port/path``, plain HTTP) to a declared ``host:port`` only;
- a declared **name** is resolved here, not in the box, and refused when any of its
  addresses is private, loopback, link-local or otherwise not global (a name must not lead
  into the gateway's own network); the connection goes to the address checked, so a second
  lookup cannot change it. A declared **address** literal is taken as the operator wrote it
  (that is how a private host is declared on purpose);
- anything else gets ``403`` and a WARNING naming the server and the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
CHUNK = 64 * 1024


class Refused(Exception):
    """The target is not declared, or leads somewhere a declared name must not."""


def parse_host(entry: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for an IPv6 literal) as (lower-case host, port)."""
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {entry!r}")
    return host.strip("[]").lower(), int(port)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


Resolve = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (the gateway's resolver; the box has none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class HostProxy:
    """One server's proxy: its declared hosts, served on a unix socket while it runs.
    ``resolver`` looks names up (tests give their own answers)."""

    def __init__(self, server: str, allowed: Collection[str], resolver: Resolve = resolve) -> None:
        self._server_name = server
        self._allowed = {parse_host(entry) for entry in allowed}
        self._resolve = resolver
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, path: str) -> None:
        self._server = await asyncio.start_unix_server(self._handle, path, limit=HEAD_LIMIT)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def admit(self, host: str, port: int) -> str:
        """The address to connect to for ``host:port``; Refused when it may not be reached."""
        host = host.lower()
        if (host, port) not in self._allowed:
            raise Refused(f"{host}:{port} is not declared")
        if _literal(host) is not None:
            return host
        addresses = await self._resolve(host, port)
        if not addresses:
            raise Refused(f"{host} does not resolve")
        for address in addresses:
            found = ipaddress.ip_address(address.split("%")[0])
            if not found.is_global:
                raise Refused(f"{host} resolves to {address}, which is not a public address")
        return addresses[0]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except Refused as exc:
            log.warning("MCP server %s: proxy refused %s", self._server_name, exc)
            with contextlib.suppress(OSError):
                writer.write(f"HTTP/1.1 403 Forbidden\r\n\r\n{exc}\n".encode())
                await writer.drain()
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("MCP server %s: proxy request failed: %r", self._server_name, exc)
            with contextlib.suppress(OSError):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                await writer.drain()
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ")
        if method == "CONNECT":
            host, port = parse_host(target)
            forward = b""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                raise Refused(f"not an absolute http URL: {target[:200]!r}")
            host, port = url.hostname, url.port or 80
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            forward = f"{method} {path} {version}\r\n".encode("latin-1") + rest
        address = await self.admit(host, port)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            up_reader, up_writer = await asyncio.open_connection(address, port)
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(forward)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


@contextlib.asynccontextmanager
async def host_proxy(server: str, allowed: Collection[str]) -> AsyncIterator[str | None]:
    """The proxy's unix socket path while the block runs; None when nothing is declared."""
    if not allowed:
        yield None
        return
    directory = tempfile.mkdtemp(prefix=f"keel-mcp-{server}-proxy-")
    proxy = HostProxy(server, allowed)
    try:
        path = os.path.join(directory, "proxy.sock")
        await proxy.start(path)
        yield path
    finally:
        await proxy.aclose()
        shutil.rmtree(directory, ignore_errors=True)
