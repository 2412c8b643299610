"""The web inbox served by uvicorn inside the service's own asyncio loop.

Started and stopped by the runtime's hooks, so one process serves gRPC, metrics and the
inbox. The socket is bound here, not by uvicorn: a port in use is a clear ``ConfigError`` at
start instead of uvicorn's ``sys.exit``, and port 0 gets a free port that ``port`` reports.
Signals stay the runtime's: uvicorn's own handlers would take SIGTERM away from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from keel_contracts.errors import ConfigError

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service runtime handles SIGTERM/SIGINT and stops us through stop()


class InboxServer:
    def __init__(self, app: ASGIApp, host: str, port: int, *, grace_s: float = 5.0) -> None:
        self._host = host
        self._requested_port = port
        self._config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(grace_s)),
            server_header=False,
        )
        self._server = _Server(self._config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the inbox is not started")
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"web inbox cannot listen on {self._host}:{self._requested_port}: {exc} "
                "(set KEEL_APPROVAL_WEB_PORT, or KEEL_APPROVAL_WEB_ENABLED=false)"
            ) from exc
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web-inbox")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise ConfigError("web inbox stopped while starting")
            await asyncio.sleep(0.01)
        log.info("web inbox on http://%s:%d/", self._host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
