"""A tool outside the caller's profile never runs, even if policy would allow it."""

from __future__ import annotations

from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import ProfileSettings
from keel_tool_gateway.testing import StaticPolicy


async def test_execute_refuses_tools_outside_the_profile() -> None:
    profiles = ProfileSettings(profiles={"default": ["*"], "restricted": ["calculator"]})
    registry = builtin_registry(profiles=profiles)
    policy = StaticPolicy("allow")
    service = ExecutionService(registry, policy, ResultLedger())
    restricted = RequestContext(session_id="s", agent_id="a", agent_profile="restricted")
    refused = await service.execute(restricted, "noop", "{}", idempotency_key="s:1:0")
    assert refused.status == "error"
    assert "not offered to agent profile 'restricted'" in refused.error
    allowed = await service.execute(
        restricted, "calculator", '{"expression": "1+1"}', idempotency_key="s:1:1"
    )
    assert (allowed.status, allowed.output) == ("ok", "2")
    default = RequestContext(session_id="s", agent_id="a", agent_profile="default")
    assert (await service.execute(default, "noop", "{}", idempotency_key="s:2:0")).status == "ok"
