"""The short chaos run: 40 sessions in flight, every service SIGKILLed once, the broker once.

Part of ``make test`` (about a minute); ``make chaos`` is the long run.
"""

from __future__ import annotations

import logging

import pytest

from tests.chaos.harness import Plan, run_chaos

pytestmark = [pytest.mark.chaos, pytest.mark.stack]

SEED = 20260101


@pytest.mark.timeout(1200)
async def test_promises_hold_while_every_service_and_the_broker_are_killed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The clients' reconnect errors while the broker is down would bury the report.
    caplog.set_level(logging.CRITICAL, logger="aiokafka")
    plan = Plan(sessions=40, kills_per_service=1, broker_kills=1, seed=SEED, timeout_s=900)
    report = await run_chaos(plan)
    print(report.render())
    assert not report.timed_out, report.render()
    assert report.failures() == [], report.render()
