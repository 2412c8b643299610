"""Items of topic-backed named lists, from the compacted ``keel.policy.lists``.

The table (key ``<list>:<item>``; a tombstone removes the item) is read whole at start and
followed; every ``interval_s`` the live sets are made to match it. List names cannot hold
``:``, so the key alone says which list an item belongs to. The sets are changed on the event
loop, between decisions, so no decision sees half a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from keel_core.bus.table import Table
from keel_policy.domain.names import LiveLists

log = logging.getLogger(__name__)


class TopicLists:
    def __init__(self, table: Table, live: LiveLists, interval_s: float) -> None:
        self._table = table
        self._live = live
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """After the table has loaded: the lists as the topic holds them, then keep up."""
        self.refresh()
        if self._interval_s > 0:
            self._task = asyncio.create_task(self._poll(), name="policy-lists")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def refresh(self) -> bool:
        items: dict[str, set[str]] = {}
        for key in self._table.keys():
            name, sep, item = key.partition(":")
            if sep and item:
                items.setdefault(name, set()).add(item)
        changed = self._live.replace(items)
        if changed:
            log.info("policy lists from the topic: %s", {n: len(i) for n, i in items.items()})
        return changed

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                self.refresh()
            except Exception:  # a bad refresh must not end following for good
                log.exception("refreshing policy lists failed")
