"""The approval book: every request this replica has seen, pending or decided.

A request arrives at least once (Kafka redelivers), so adding is idempotent by id and never
resets a decision. A decision is made once: resolving a decided request is refused. Watchers
get every change in order through a queue each.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keel_approval.domain.arguments import check_arguments
from keel_approval.domain.models import STATUS_OF, Approval, Decision, Outcome, Vote
from keel_approval.domain.verify import decision_problem, vote_problem
from keel_approval.errors import WatcherLagged
from keel_contracts.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


def _now() -> datetime:
    return datetime.now(UTC)


def _settled(request: Approval, decision: Decision) -> Approval:
    return request.model_copy(
        update={
            "status": decision.status,
            "decided_by": decision.reviewer,
            "decided_at": decision.decided_at,
            "comment": decision.comment,
            "modified_arguments": decision.modified_arguments,
            "decision_json": decision.event.model_dump_json() if decision.event else "",
        }
    )


def _refusal(request: Approval, decision: Decision) -> str | None:
    return decision_problem(request, decision.event) if decision.event is not None else None


def _merged(known: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return known + tuple(r for r in dict.fromkeys(more) if r not in known)


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


@dataclass(frozen=True)
class Retention:
    """How much of the past the book keeps, so a long-running service holds bounded state.

    A decided request stays readable for ``decided_s`` (the tool gateway checks an approval
    when the parked call runs again, seconds to minutes after the decision) and at most
    ``decided_max`` are kept; after that only its id is remembered (``forgotten_max`` of them)
    so a redelivered request is not taken for a new one. Decisions and votes for requests not
    seen yet are kept up to ``early_max`` (oldest dropped first).
    """

    decided_s: float = 24 * 3600.0
    decided_max: int = 100_000
    forgotten_max: int = 1_000_000
    early_max: int = 10_000


class ApprovalBook:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _now,
        watch_queue_size: int = 1000,
        retention: Retention | None = None,
    ) -> None:
        self._clock = clock
        self._watch_queue_size = watch_queue_size
        self._retention = retention or Retention()
        self._approvals: dict[str, Approval] = {}
        self._watchers: set[Watcher] = set()
        # Decisions and quorum votes read before their request (the two topics are read
        # independently).
        self._early: dict[str, Decision] = {}
        self._early_votes: dict[str, tuple[str, ...]] = {}
        # Ids of decided requests no longer kept: insertion-ordered, oldest first.
        self._forgotten: dict[str, None] = {}

    def add_request(self, request: Approval) -> tuple[Approval, bool]:
        """Add a pending request; ``(current, True)`` when it is new. A request already known
        (redelivered, or replayed after a decision) leaves the book as it is."""
        known = self._approvals.get(request.id)
        if known is not None:
            return known, False
        if request.id in self._forgotten:
            return request, False  # decided long ago: a redelivery, not a new request
        if not request.pending:
            raise InvalidArgument(f"a new request must be pending, not {request.status}")
        votes = self._early_votes.pop(request.id, ())
        if votes:
            request = request.model_copy(update={"approved_by": votes})
        early = self._early.pop(request.id, None)
        if early is not None and _refusal(request, early) is None:
            request = _settled(request, early)
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
        that must publish the decision first records it only once that worked. Under a quorum
        an approval short of it comes back still pending, with the reviewer's vote added."""
        reviewer = reviewer.strip()
        if not reviewer:
            raise InvalidArgument("reviewer is required")
        if outcome == "modify" and not isinstance(modified_arguments, dict):
            raise InvalidArgument("modify needs the modified arguments as a JSON object")
        if outcome != "modify" and modified_arguments is not None:
            raise InvalidArgument(f"modified arguments are only allowed with modify, not {outcome}")
        current = self.get(approval_id)
        if outcome == "modify" and isinstance(modified_arguments, dict):
            check_arguments(current.arguments_schema, modified_arguments)
        if not current.pending:
            raise FailedPrecondition(
                f"approval {approval_id!r} is already {current.status} by {current.decided_by}"
            )
        if outcome != "time_out" and reviewer == current.agent_id:
            raise PermissionDenied(f"{reviewer!r} cannot decide its own request")
        if outcome == "approve":
            return self._approve(current, reviewer, comment)
        if outcome == "modify" and current.required_approvals > 1:
            raise FailedPrecondition(
                f"approval {approval_id!r} needs {current.required_approvals} approvals and "
                "cannot be modified by one reviewer; reject it with a comment instead"
            )
        return self._decided(current, outcome, reviewer, comment, modified_arguments)

    def _approve(self, current: Approval, reviewer: str, comment: str) -> Approval:
        if reviewer in current.approved_by:
            raise FailedPrecondition(
                f"{reviewer!r} has approved {current.id!r} already; it needs "
                f"{current.required_approvals} distinct reviewers"
            )
        votes = (*current.approved_by, reviewer)
        if len(votes) < current.required_approvals:
            return current.model_copy(update={"approved_by": votes})
        decided = self._decided(current, "approve", ",".join(votes), comment, None)
        return decided.model_copy(update={"approved_by": votes})

    def _decided(
        self,
        current: Approval,
        outcome: Outcome,
        reviewer: str,
        comment: str,
        modified_arguments: object,
    ) -> Approval:
        return current.model_copy(
            update={
                "status": STATUS_OF[outcome],
                "decided_by": reviewer,
                "decided_at": self._clock(),
                "comment": comment,
                "modified_arguments": modified_arguments if outcome == "modify" else None,
            }
        )

    def record(self, decided: Approval) -> Approval:
        """Store a decision (or a quorum vote) made by ``decide``; refused if the request was
        decided meanwhile."""
        current = self.get(decided.id)
        if not current.pending:
            raise FailedPrecondition(f"approval {decided.id!r} is already {current.status}")
        if decided.pending and len(decided.approved_by) <= len(current.approved_by):
            raise InvalidArgument("a decision cannot be pending")
        self._approvals[decided.id] = decided
        self._notify(decided)
        return decided

    def prune(self) -> int:
        """Forget decided requests past their retention (by age, then by count, oldest
        first); how many were forgotten."""
        now = self._clock()
        decided = sorted(
            (a for a in self._approvals.values() if not a.pending),
            key=lambda a: (a.decided_at or a.created_at, a.id),
        )
        cutoff = now.timestamp() - self._retention.decided_s
        over = max(0, len(decided) - self._retention.decided_max)
        gone = [
            a
            for i, a in enumerate(decided)
            if i < over or (a.decided_at or a.created_at).timestamp() < cutoff
        ]
        for approval in gone:
            del self._approvals[approval.id]
            self._forgotten[approval.id] = None
        _trim(self._forgotten, self._retention.forgotten_max)
        return len(gone)

    def expired(self) -> builtins.list[Approval]:
        """Pending requests whose time is up, oldest deadline first."""
        now = self._clock()
        due = [
            a
            for a in self._approvals.values()
            if a.pending and a.expires_at is not None and a.expires_at <= now
        ]
        return sorted(due, key=lambda a: (a.expires_at or now, a.id))

    def apply_decision(self, decision: Decision) -> bool:
        """A decision read back from the decisions topic (at start, or made by another replica):
        it settles the request as published. One for a request not seen yet is kept until the
        request arrives (and checked then). ``True`` when it changed the book. Raises
        ``PermissionDenied`` for a decision the request's own rules refuse (``verify``)."""
        current = self._approvals.get(decision.approval_id)
        if current is None:
            if decision.approval_id not in self._forgotten:
                self._early[decision.approval_id] = decision
                _trim(self._early, self._retention.early_max)
            return False
        if not current.pending:
            return False
        problem = _refusal(current, decision)
        if problem is not None:
            raise PermissionDenied(problem)
        self._approvals[current.id] = _settled(current, decision)
        self._notify(self._approvals[current.id])
        return True

    def apply_vote(self, vote: Vote, *, check: bool = False) -> bool:
        """A quorum vote read back from the decisions topic (at start, or cast on another
        replica). Votes merge: reviewers already counted stay, new ones are added in order, so
        applying one twice, or our own vote read back, changes nothing. ``True`` when it
        changed the book. With ``check``, a vote the request's rules refuse (``verify``) raises
        ``PermissionDenied``."""
        current = self._approvals.get(vote.approval_id)
        if current is None:
            if vote.approval_id not in self._forgotten:
                known = self._early_votes.get(vote.approval_id, ())
                self._early_votes[vote.approval_id] = _merged(known, vote.approvals)
                _trim(self._early_votes, self._retention.early_max)
            return False
        problem = vote_problem(current, vote) if check else None
        if problem is not None:
            raise PermissionDenied(problem)
        merged = _merged(current.approved_by, vote.approvals)
        if not current.pending or merged == current.approved_by:
            return False
        self._approvals[current.id] = current.model_copy(update={"approved_by": merged})
        self._notify(self._approvals[current.id])
        return True

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


def _trim(kept: dict[str, Any], limit: int) -> None:
    """Drop the oldest entries (insertion order) beyond ``limit``."""
    while len(kept) > limit:
        del kept[next(iter(kept))]
