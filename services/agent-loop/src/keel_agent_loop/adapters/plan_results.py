"""Follows ``keel.plans`` (no consumer group, from the end) and hands every record to the plan
door, which settles the plans this replica accepted: the orchestrator (any replica) publishes
a plan's ``PlanFinished`` there under its plan id. The agent loop's Kafka principal already
reads ``keel.plans`` (it orchestrates), so following it needs no new grant."""

from __future__ import annotations

from keel_agent_loop.usecases.plan_door import PlanDoor
from keel_core.runtime import Follower


class PlanResultsFollower:
    """Over a group-less follower of ``keel.plans`` (``runtime.follower(PLANS, ...)``,
    which the runtime stops with the service)."""

    def __init__(self, follower: Follower, door: PlanDoor) -> None:
        self._follower = follower
        self._door = door

    async def start(self) -> None:
        # From the end: a plan is accepted only after this process started, so its result
        # is written after that too.
        await self._follower.start_at_end()
        self._follower.follow(self._door.finished)
