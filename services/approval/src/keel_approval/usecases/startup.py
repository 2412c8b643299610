"""What the service does before it serves: rebuild the book from the approval topics, then
keep following them, every partition: requests (so every replica lists every pending approval
at once), decisions, and reviewers' intents, which every replica folds into the one decision
(ADR 0014).

A record the rebuild cannot use is sent to its topic's DLQ with the reason, by the follower
that loaded it (``keel_core.bus.deadletter.DeadLettering``), and the start goes on (a decision
or vote the approval service did not sign is also audited as ``security.denied``): a DLQ that
cannot be written is logged, never a reason not to serve (the record stays on its topic)."""

from __future__ import annotations

import logging

from keel_approval.domain.book import ApprovalBook
from keel_approval.errors import ForgedRecord
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.arbiter import Arbiter
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestIntake, RequestReader
from keel_approval.usecases.rebuild import Rejected, rebuild
from keel_contracts.events import Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS
from keel_core.bus import PoisonMessage
from keel_core.bus.deadletter import DeadLettering
from keel_core.runtime import Follower

log = logging.getLogger(__name__)


class BookStartup:
    """``requests`` is read once (``None``: no rebuild); ``decisions`` is read to its end
    whenever there is a rebuild or following, because following starts where reading ended.
    With an ``arbiter`` (and following), the request and intents topics are followed too: the
    intents are read to their end after the rebuild and folded, then followed."""

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
        arbiter: Arbiter | None = None,
        intake: RequestIntake | None = None,
        intents: Follower | None = None,
    ) -> None:
        self._book = book
        self._reader = reader
        self._decider = decider
        self._metrics = metrics
        self._requests = requests
        self._decisions = decisions
        self._follow = follow
        self._arbiter = arbiter if follow else None
        self._intake = intake
        self._intents = intents

    async def start(self) -> None:
        decided: list[Envelope] = []
        if self._requests is not None or self._follow:
            decided = await self._decisions.load()
        if self._requests is not None:
            requested = await self._requests.load()
            self._metrics.rebuilt.labels(APPROVAL_REQUESTS).set(len(requested))
            self._metrics.rebuilt.labels(APPROVAL_DECISIONS).set(len(decided))
            rejected: list[Rejected] = []
            added, applied = rebuild(
                self._book,
                self._reader,
                requested,
                decided,
                rejected=rejected,
                verifier=self._decider.verifier,
            )
            for refused in (r for r in rejected if isinstance(r.error, ForgedRecord)):
                await self._decider.denied(refused.envelope, refused.reason)
            await self._dead_letter(rejected)
            log.info(
                "rebuilt %d requests (%d decisions and votes applied, %d pending)",
                added,
                applied,
                self._book.pending_count,
            )
        if self._arbiter is not None and self._intents is not None:
            for envelope in await self._intents.load():
                await self._arbiter.apply(envelope)
        if self._follow:
            self._decisions.follow(self._decider.apply_published)
        if self._arbiter is not None and self._intents is not None:
            self._intents.follow(self._arbiter.apply)
        if self._requests is None:
            return
        if self._arbiter is not None and self._intake is not None:
            self._requests.follow(self._observe)
        else:
            await self._requests.stop()  # read once; the consumer's share is enough

    async def _observe(self, envelope: Envelope) -> bool:
        """A request followed live; a poison one is the consumer's to dead-letter."""
        if self._intake is None:
            return False
        try:
            request = self._reader.read(envelope)
        except PoisonMessage as exc:
            log.debug("followed request %s not readable: %s", envelope.id, exc)
            return False
        await self._intake.observe(request)
        return True

    async def _dead_letter(self, rejected: list[Rejected]) -> None:
        sources = {APPROVAL_REQUESTS: self._requests, APPROVAL_DECISIONS: self._decisions}
        for topic, follower in sources.items():
            if not isinstance(follower, DeadLettering):
                continue
            try:
                for skipped in (r for r in rejected if r.topic == topic):
                    await follower.dead_letter(skipped.envelope, skipped.reason, skipped.error)
                await follower.dead_letter_undecodable()
            except Exception:  # noqa: BLE001 - the record stays on its topic; serve anyway
                log.exception("could not dead-letter the records the rebuild skipped on %s", topic)
