"""What the service does before it serves: rebuild the book from both approval topics, then
keep following the decisions topic so decisions and quorum votes made by other replicas reach
this one's book."""

from __future__ import annotations

import logging

from keel_approval.domain.book import ApprovalBook
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestReader
from keel_approval.usecases.rebuild import rebuild
from keel_contracts.events import Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS
from keel_core.runtime import Follower

log = logging.getLogger(__name__)


class BookStartup:
    """``requests`` is read once (``None``: no rebuild); ``decisions`` is read to its end
    whenever there is a rebuild or following, because following starts where reading ended."""

    def __init__(
        self,
        book: ApprovalBook,
        reader: RequestReader,
        decider: Decider,
        metrics: ApprovalMetrics,
        *,
        requests: Follower | None,
        decisions: Follower,
        follow: bool,
    ) -> None:
        self._book = book
        self._reader = reader
        self._decider = decider
        self._metrics = metrics
        self._requests = requests
        self._decisions = decisions
        self._follow = follow

    async def start(self) -> None:
        decided: list[Envelope] = []
        if self._requests is not None or self._follow:
            decided = await self._decisions.load()
        if self._requests is not None:
            requested = await self._requests.load()
            await self._requests.stop()  # read once; nothing follows the request topic
            self._metrics.rebuilt.labels(APPROVAL_REQUESTS).set(len(requested))
            self._metrics.rebuilt.labels(APPROVAL_DECISIONS).set(len(decided))
            added, applied = rebuild(self._book, self._reader, requested, decided)
            log.info(
                "rebuilt %d requests (%d decisions and votes applied, %d pending)",
                added,
                applied,
                self._book.pending_count,
            )
        if self._follow:
            self._decisions.follow(self._decider.apply_published)
