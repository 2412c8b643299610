"""The approval book: every request this replica has seen, pending or decided.

A request arrives at least once (Kafka redelivers), so adding is idempotent by id and never
resets a decision. A decision is made once: resolving a decided request is refused. Watchers
get every change in order through a queue each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from keel_approval.domain.models import STATUS_OF, Approval, Outcome
from keel_approval.errors import WatcherLagged
from keel_core.errors import FailedPrecondition, InvalidArgument, NotFound


def _now() -> datetime:
    return datetime.now(UTC)


class Watcher:
    """One subscriber's view of the changes; ``next()`` raises ``WatcherLagged`` once it has
    fallen more than its queue size behind, rather than letting memory grow without bound."""

    def __init__(self, size: int) -> None:
        self._queue: asyncio.Queue[Approval | None] = asyncio.Queue(maxsize=size + 1)
        self._size = size
        self.lagged = False

    def offer(self, approval: Approval) -> bool:
        if self._queue.qsize() >= self._size:
            self.lagged = True
            self._queue.put_nowait(None)  # wakes the reader; the extra slot is for this
            return False
        self._queue.put_nowait(approval)
        return True

    async def next(self) -> Approval:
        item = await self._queue.get()
        if item is None:
            raise WatcherLagged("watch stream fell behind; reconnect to get the current state")
        return item


class ApprovalBook:
    def __init__(
        self, *, clock: Callable[[], datetime] = _now, watch_queue_size: int = 1000
    ) -> None:
        self._clock = clock
        self._watch_queue_size = watch_queue_size
        self._approvals: dict[str, Approval] = {}
        self._watchers: set[Watcher] = set()

    def add_request(self, request: Approval) -> tuple[Approval, bool]:
        """Add a pending request; ``(current, True)`` when it is new. A request already known
        (redelivered, or replayed after a decision) leaves the book as it is."""
        known = self._approvals.get(request.id)
        if known is not None:
            return known, False
        if not request.pending:
            raise InvalidArgument(f"a new request must be pending, not {request.status}")
        self._approvals[request.id] = request
        self._notify(request)
        return request, True

    def get(self, approval_id: str) -> Approval:
        try:
            return self._approvals[approval_id]
        except KeyError:
            raise NotFound(f"no approval {approval_id!r}") from None

    def list(self, include_resolved: bool = False) -> list[Approval]:
        """Oldest first, so a reviewer works through the queue in arrival order."""
        found = [a for a in self._approvals.values() if include_resolved or a.pending]
        return sorted(found, key=lambda a: (a.created_at, a.id))

    @property
    def pending_count(self) -> int:
        return sum(1 for a in self._approvals.values() if a.pending)

    def decide(
        self,
        approval_id: str,
        outcome: Outcome,
        reviewer: str,
        comment: str = "",
        modified_arguments: object = None,
    ) -> Approval:
        """The approval as it would be after this decision, without changing the book: a caller
        that must publish the decision first records it only once that worked."""
        if not reviewer.strip():
            raise InvalidArgument("reviewer is required")
        if outcome == "modify" and not isinstance(modified_arguments, dict):
            raise InvalidArgument("modify needs the modified arguments as a JSON object")
        if outcome != "modify" and modified_arguments is not None:
            raise InvalidArgument(f"modified arguments are only allowed with modify, not {outcome}")
        current = self.get(approval_id)
        if not current.pending:
            raise FailedPrecondition(
                f"approval {approval_id!r} is already {current.status} by {current.decided_by}"
            )
        return current.model_copy(
            update={
                "status": STATUS_OF[outcome],
                "decided_by": reviewer.strip(),
                "decided_at": self._clock(),
                "comment": comment,
                "modified_arguments": modified_arguments if outcome == "modify" else None,
            }
        )

    def record(self, decided: Approval) -> Approval:
        """Store a decision made by ``decide``; refused if the request was decided meanwhile."""
        current = self.get(decided.id)
        if not current.pending:
            raise FailedPrecondition(f"approval {decided.id!r} is already {current.status}")
        if decided.pending:
            raise InvalidArgument("a decision cannot be pending")
        self._approvals[decided.id] = decided
        self._notify(decided)
        return decided

    def resolve(
        self,
        approval_id: str,
        outcome: Outcome,
        reviewer: str,
        comment: str = "",
        modified_arguments: object = None,
    ) -> Approval:
        """Decide and record in one step; returns the decided approval."""
        return self.record(self.decide(approval_id, outcome, reviewer, comment, modified_arguments))

    @contextmanager
    def watch(self) -> Iterator[Watcher]:
        """Subscribe for the block's duration; every add and decision after entry is delivered."""
        watcher = Watcher(self._watch_queue_size)
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)

    def _notify(self, approval: Approval) -> None:
        for watcher in list(self._watchers):
            if not watcher.offer(approval):
                self._watchers.discard(watcher)
