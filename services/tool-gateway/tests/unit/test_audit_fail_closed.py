"""A tool call whose audit record cannot be written fails closed: it is not run (the emitter
knows the bus refuses records) or not answered (its own record failed), unless
``KEEL_TOOL_GATEWAY_AUDIT_FAIL_OPEN`` relaxes it."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from keel_contracts.errors import Unavailable
from keel_contracts.topics import AUDIT
from keel_core.audit import AuditEmitter
from keel_core.testing import FlakyPublisher, InMemoryPublisher
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.config import Settings
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.testing import CountingTool, StaticPolicy
from keel_tool_gateway.usecase import AUDIT_UNAVAILABLE, ExecuteToolCall, ToolCall


def gateway(
    audit: AuditEmitter, *, fail_open: bool = False
) -> tuple[ExecuteToolCall, CountingTool]:
    registry = builtin_registry()
    counter = CountingTool()
    registry.register(counter.tool)
    service = ExecutionService(registry, StaticPolicy("allow"), ResultLedger(10))
    execute = ExecuteToolCall(
        service,
        registry,
        audit,
        ToolGatewayMetrics(CollectorRegistry()),
        audit_fail_open=fail_open,
    )
    return execute, counter


def call(key: str) -> ToolCall:
    return ToolCall(RequestContext(session_id="s1"), "counter", "{}", idempotency_key=key)


async def refusing_async_emitter() -> tuple[AuditEmitter, FlakyPublisher]:
    """An emitter that does not wait for acks, after the bus refused one of its records."""
    flaky = FlakyPublisher()
    audit = AuditEmitter(flaky, "tool-gateway@1", source="tool-gateway", wait_for_ack=False)
    audit.start()
    flaky.fail_next(1, topic=AUDIT)
    await audit.record("earlier", actor="a", subject="s")
    await flaky.flush()
    await audit.close()
    audit.start()
    assert not audit.writable
    return audit, flaky


async def test_a_synchronous_audit_failure_withholds_the_answer() -> None:
    flaky = FlakyPublisher()
    audit = AuditEmitter(flaky, "tool-gateway@1", source="tool-gateway", wait_for_ack=True)
    audit.start()
    execute, counter = gateway(audit)
    flaky.fail_next(1, topic=AUDIT)
    with pytest.raises(Unavailable, match="audit log is not accepting records"):
        await execute(call("k1"))
    assert counter.runs == 1
    await audit.close()


async def test_nothing_runs_while_the_bus_refuses_audit_records() -> None:
    audit, flaky = await refusing_async_emitter()
    execute, counter = gateway(audit)
    with pytest.raises(Unavailable) as refused:
        await execute(call("k1"))
    assert str(refused.value) == AUDIT_UNAVAILABLE
    assert counter.runs == 0
    # The refusal itself was recorded, which shows the bus accepts records again.
    await flaky.flush()
    await audit.close()
    assert audit.writable
    inner = flaky.inner
    assert isinstance(inner, InMemoryPublisher)
    assert inner.audit_records()[-1].details["status"] == "refused"
    audit.start()
    result = await execute(call("k2"))
    assert (result.status, counter.runs) == ("ok", 1)
    await audit.close()


async def test_fail_open_runs_and_answers_without_the_audit() -> None:
    audit, flaky = await refusing_async_emitter()
    execute, counter = gateway(audit, fail_open=True)
    flaky.fail_next(1, topic=AUDIT)
    result = await execute(call("k1"))
    assert (result.status, counter.runs) == ("ok", 1)
    await audit.close()

    sync = AuditEmitter(flaky, "tool-gateway@2", source="tool-gateway", wait_for_ack=True)
    sync.start()
    execute, counter = gateway(sync, fail_open=True)
    flaky.fail_next(1, topic=AUDIT)
    result = await execute(call("k2"))
    assert (result.status, counter.runs) == ("ok", 1)
    await sync.close()


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().audit_fail_open is False
    monkeypatch.setenv("KEEL_TOOL_GATEWAY_AUDIT_FAIL_OPEN", "true")
    assert Settings().audit_fail_open is True
