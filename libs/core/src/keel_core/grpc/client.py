"""Client side: channels and a wrapper that turns AioRpcError into Keel's typed errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from keel_core.grpc.errors import error_from_status

T = TypeVar("T")

DEFAULT_DEADLINE_S = 30.0


def insecure_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=[("grpc.enable_retries", 1)])


async def call_with_errors(call: Callable[[], Awaitable[T]]) -> T:
    """Await a stub call; a failed status becomes the matching ``KeelError`` subclass."""
    try:
        return await call()
    except grpc.aio.AioRpcError as exc:
        raise error_from_status(exc.code(), exc.details() or "") from exc
