"""Serve fake servicers on a loopback port, in-process, for the length of a test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

AddServicer = Callable[[Any, grpc.aio.Server], None]


@contextlib.asynccontextmanager
async def serving(*services: tuple[Any, AddServicer]) -> AsyncIterator[str]:
    """Yields the ``host:port`` target the servicers answer on."""
    server = grpc.aio.server()
    for servicer, add in services:
        add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
