"""Follows the broadcast ``keel.control`` topic (no consumer group, from the end) and raises
the cancel flag of the sessions it names, so a session running in this process stops at its
next step whichever replica received the ``Cancel``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer

from keel_agent_loop.domain.cancel import CancelFlags
from keel_contracts.errors import ConfigError
from keel_contracts.events import Envelope, TaskCancelRequested
from keel_contracts.topics import CONTROL
from keel_core.bus.connect import start_with_retry
from keel_core.bus.reader import topic_partitions
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)


class ControlFollower:
    def __init__(self, settings: KafkaSettings, flags: CancelFlags, client: str) -> None:
        self._settings = settings
        self._flags = flags
        self._task: asyncio.Task[None] | None = None
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=f"{settings.client_id_prefix}-{client}-control",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    async def start(self) -> None:
        try:
            await start_with_retry(self._consumer.start, self._settings)
        except ConfigError:
            await self._consumer.stop()
            raise
        partitions = await topic_partitions(self._consumer, CONTROL)
        if not partitions:
            await self._consumer.stop()
            raise ConfigError(f"topic {CONTROL} does not exist")
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve now: a request sent after start is never skipped
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._follow(), name="follow-control")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self.apply(record.value)

    def apply(self, value: bytes | None) -> None:
        """Raise the flag for a cancel request; anything else on the topic is ignored."""
        try:
            envelope = Envelope.from_bytes(value or b"")
            if envelope.type != TaskCancelRequested.event_type or not envelope.session_id:
                return
            request = envelope.parse(TaskCancelRequested)
        except ValueError as exc:
            log.warning("ignoring undecodable control record: %s", exc)
            return
        log.info("cancel requested for %s: %s", envelope.session_id, request.reason)
        self._flags.request(envelope.session_id, request.reason)
