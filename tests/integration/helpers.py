"""Shared steps of the cross-service tests: submit a task on Kafka, wait for its result."""

from __future__ import annotations

import asyncio

from keel_cli.audit_tail import read_audit
from keel_cli.follow import SessionFollower
from keel_cli.tasks import publish_task
from keel_contracts.events import AuditRecord, Envelope, TaskSubmitted
from keel_core.settings import KafkaSettings


async def run_task(
    kafka: KafkaSettings, goal: str, timeout_s: float = 60, **fields: object
) -> tuple[str, list[Envelope]]:
    """Publish a task to keel.tasks and collect its events up to and including the result."""
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(kafka, TaskSubmitted(goal=goal, **fields))  # type: ignore[arg-type]
        events: list[Envelope] = []

        async def collect() -> None:
            async for envelope in follower.events(session_id):
                events.append(envelope)

        await asyncio.wait_for(collect(), timeout_s)
    return session_id, events


async def audit_of(
    kafka: KafkaSettings, session_id: str, expect: set[str], timeout_s: float = 20
) -> list[AuditRecord]:
    """The session's audit records, waiting until every expected action has landed."""
    async with asyncio.timeout(timeout_s):
        while True:
            records = [rec for env, rec in await read_audit(kafka) if env.session_id == session_id]
            if expect <= {r.action for r in records}:
                return records
            await asyncio.sleep(0.3)
