"""A refused connection is transient for http_fetch: retried, then reported once."""

from __future__ import annotations

from keel_cli.stack import free_port
from keel_tool_gateway.adapters.resilience.runner import Resilience
from keel_tool_gateway.adapters.tools.http_fetch import HttpFetchSettings, make_http_fetch
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.testing import StaticPolicy


async def test_a_refused_connection_is_retried_then_reported() -> None:
    registry = ToolRegistry(10.0)
    registry.register(
        make_http_fetch(HttpFetchSettings(allowed_domains=["127.0.0.1"], allow_private=True))
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    resilience = Resilience(ResilienceSettings(retry_max_attempts=3), sleep=sleep)
    service = ExecutionService(
        registry, StaticPolicy("allow"), ResultLedger(10), resilience=resilience
    )
    ctx = RequestContext(session_id="s", agent_id="a")
    url = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    result = await service.execute(ctx, "http_fetch", f'{{"url": "{url}"}}', "s:1:0")
    assert result.status == "error"
    assert "after 3 attempts" in result.error
    assert "ConnectError" in result.error
    assert len(slept) == 2
