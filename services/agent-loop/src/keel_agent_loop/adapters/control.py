"""Follows the broadcast ``keel.control`` topic (no consumer group, from the end) and raises
the cancel flag of the sessions it names, so a session running in this process stops at its
next step whichever replica received the ``Cancel``."""

from __future__ import annotations

import logging

from keel_agent_loop.domain.cancel import CancelFlags
from keel_contracts.events import Envelope, TaskCancelRequested
from keel_core.runtime import Follower

log = logging.getLogger(__name__)


class ControlFollower:
    """Over a group-less follower of ``keel.control`` (``runtime.follower(CONTROL, ...)``,
    which the runtime stops with the service)."""

    def __init__(self, follower: Follower, flags: CancelFlags) -> None:
        self._follower = follower
        self._flags = flags

    async def start(self) -> None:
        await self._follower.start_at_end()
        self._follower.follow(self.apply)

    async def stop(self) -> None:
        await self._follower.stop()

    async def apply(self, envelope: Envelope) -> None:
        """Raise the flag for a cancel request; anything else on the topic is ignored."""
        if envelope.type != TaskCancelRequested.event_type or not envelope.session_id:
            return
        try:
            request = envelope.parse(TaskCancelRequested)
        except ValueError as exc:
            log.warning("ignoring undecodable control record: %s", exc)
            return
        log.info("cancel requested for %s: %s", envelope.session_id, request.reason)
        self._flags.request(envelope.session_id, request.reason)
