"""Old ledger entries are tombstoned, so ``keel.tool-results`` — and every replica's view of
it, loaded whole at start — does not grow with every call ever made.

An entry answers a retried call of its key. Once its session is long finished (the agent loop
keeps a session's finished marker for ``KEEL_AGENT_LOOP_FINISHED_RETENTION_S``, 7 days by
default, and a finished session runs nothing again) no caller can send that key any more, so a
retention longer than that marker's loses nothing. Every replica sweeps the whole table: a
tombstone is idempotent and needs no coordination.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from keel_core.bus.table import Table
from keel_core.periodic import Periodic

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LedgerSweeper:
    def __init__(
        self,
        table: Table,
        retention_s: float,
        interval_s: float,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._table = table
        self._retention = timedelta(seconds=retention_s)
        self._now = now
        self._periodic = Periodic("ledger-sweeper", interval_s, self.sweep)
        self.start = self._periodic.start
        self.stop = self._periodic.stop

    async def sweep(self) -> list[str]:
        """One pass: the keys whose entries were tombstoned."""
        cutoff = self._now() - self._retention
        expired = [
            key
            for key in self._table.keys()
            if (entry := self._table.get(key)) is not None and entry.time < cutoff
        ]
        for key in expired:
            await self._table.delete(key)
        if expired:
            log.info(
                "tombstoned %d ledger entr%s", len(expired), "y" if len(expired) == 1 else "ies"
            )
        return expired
