"""The inbox's uvicorn server inside the service's loop: serves, reports its port, stops, and
turns a port in use into a clear configuration error instead of uvicorn's exit."""

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from keel_approval.adapters.web_server import InboxServer
from keel_contracts.errors import ConfigError


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", hello)])


async def test_it_serves_on_a_free_port_and_stops() -> None:
    server = InboxServer(APP, "127.0.0.1", 0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).text == "hello"
    await server.stop()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)


async def test_a_port_in_use_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = InboxServer(APP, "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(ConfigError, match="KEEL_APPROVAL_WEB_PORT"):
            await server.start()
        await server.stop()  # safe after a failed start
