"""Two approval replicas deciding through the arbiter (ADR 0014), over one shared log: each
publishes to it, each reads every record of it in the same order, as the real topics give."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Approval, Outcome
from keel_approval.usecases.arbiter import Arbiter
from keel_contracts.approvals import signature_problem
from keel_contracts.errors import FailedPrecondition
from keel_contracts.events import ApprovalDecided, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_INTENTS
from keel_core.testing import FakeClock
from keel_core.trust import Signer

SIGNER = Signer(Ed25519PrivateKey.generate())


@dataclass
class SharedLog:
    """The intents and decisions topics as one ordered log (both keyed by the session)."""

    records: list[tuple[str, Envelope]] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)
    down: bool = False
    acknowledged: asyncio.Event | None = None  # set: decisions wait for it (a slow broker)

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        if topic == APPROVAL_DECISIONS and self.acknowledged is not None:
            await self.acknowledged.wait()
        self.records.append((topic, envelope))
        self.grew.set()

    async def until(self, count: int) -> None:
        while len(self.records) < count:
            self.grew.clear()
            await self.grew.wait()

    def decisions(self) -> list[Envelope]:
        return [e for t, e in self.records if t == APPROVAL_DECISIONS]


@dataclass
class Replica:
    book: ApprovalBook
    arbiter: Arbiter
    accounted: list[tuple[str, str]]
    read: int = 0

    async def catch_up(self, log: SharedLog) -> None:
        """Read the log to its end, as the followers do (intents fold, decisions clear)."""
        while self.read < len(log.records):
            topic, envelope = log.records[self.read]
            self.read += 1
            if topic == APPROVAL_INTENTS:
                await self.arbiter.apply(envelope)
            else:
                self.arbiter.published(str(envelope.data["approval_id"]))


def replica(log: SharedLog, clock: FakeClock, required: int = 1) -> Replica:
    book = ApprovalBook()
    book.add_request(
        Approval(
            id="ap-1",
            session_id="s1",
            agent_id="agent-1",
            tool_name="send_email",
            arguments={"to": "all@example.com"},
            created_at=datetime(2026, 12, 6, tzinfo=UTC),
            expires_at=datetime(2026, 12, 6, 1, tzinfo=UTC),
            required_approvals=required,
        )
    )
    accounted: list[tuple[str, str]] = []

    async def account(approval: Approval, reviewer: str) -> None:
        accounted.append((approval.status, reviewer))

    async def denied(envelope: Envelope, reason: str) -> None:
        raise AssertionError(reason)

    arbiter = Arbiter(
        book,
        log,
        account=account,
        denied=denied,
        signer=SIGNER,
        verifier=SIGNER.public,
        grace_s=3.0,
        clock=clock,
    )
    return Replica(book, arbiter, accounted)


async def both_act(
    log: SharedLog, first: tuple[Replica, Outcome, str], second: tuple[Replica, Outcome, str]
) -> list[Approval | BaseException]:
    """Both reviewers act before either replica has read anything: the same moment."""
    tasks = [asyncio.create_task(r.arbiter.submit("ap-1", o, who)) for r, o, who in (first, second)]
    await log.until(2)
    for one in (first[0], second[0]):
        await one.catch_up(log)
    await first[0].catch_up(log)  # the decision the second replica wrote
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_quorum_votes_cast_on_two_replicas_at_once_become_one_decision() -> None:
    log, clock = SharedLog(), FakeClock()
    one, two = replica(log, clock, required=2), replica(log, clock, required=2)
    answers = await both_act(log, (one, "approve", "alice"), (two, "approve", "bob"))
    assert [a.status for a in answers if isinstance(a, Approval)] == ["pending", "approved"]
    decisions = log.decisions()
    assert len(decisions) == 1
    decided = decisions[0].parse(ApprovalDecided)
    assert (decided.outcome, decided.reviewer) == ("approved", "alice,bob")
    assert signature_problem(decided, SIGNER.public) is None
    # Both books hold the same signed decision; each replica accounted only its own action.
    assert one.book.get("ap-1").decision_json == two.book.get("ap-1").decision_json
    assert one.accounted == [("pending", "alice")]
    assert two.accounted == [("approved", "bob")]


async def test_conflicting_actions_land_one_decision_and_the_loser_is_told() -> None:
    log, clock = SharedLog(), FakeClock()
    one, two = replica(log, clock), replica(log, clock)
    approved, refused = await both_act(log, (one, "approve", "alice"), (two, "reject", "bob"))
    assert isinstance(approved, Approval)
    assert approved.status == "approved"
    assert isinstance(refused, FailedPrecondition)
    assert "is already approved by alice" in str(refused)
    assert [d.parse(ApprovalDecided).outcome for d in log.decisions()] == ["approved"]
    assert two.book.get("ap-1").status == "approved"


async def test_a_replica_that_died_before_its_decision_has_it_published_by_another() -> None:
    log, clock = SharedLog(), FakeClock()
    one, two = replica(log, clock), replica(log, clock)
    one_down = asyncio.create_task(one.arbiter.submit("ap-1", "approve", "alice"))
    await log.until(1)
    one_down.cancel()  # killed after its intent, before it read it back
    await two.catch_up(log)
    assert two.book.get("ap-1").status == "approved"
    await two.arbiter.sweep()
    assert log.decisions() == []  # within the grace the writer may still publish
    clock.advance(3.0)
    await two.arbiter.sweep()
    await two.arbiter.sweep()
    (published,) = log.decisions()
    assert published.parse(ApprovalDecided).reviewer == "alice"
    # A writer only slow, not dead, publishes its copy late: the same record, byte for byte,
    # so a reader taking the first decision per approval id sees one decision.
    await one.catch_up(log)
    first, second = log.decisions()
    assert first.to_bytes() == second.to_bytes()


async def test_every_replica_asks_for_the_time_out_and_one_decision_lands() -> None:
    log, clock = SharedLog(), FakeClock()
    one, two = replica(log, clock), replica(log, clock)
    await one.arbiter.sweep()
    await two.arbiter.sweep()
    await one.arbiter.sweep()  # asked once per replica, not once per sweep
    assert len(log.records) == 2
    await one.catch_up(log)
    await two.catch_up(log)
    await one.catch_up(log)
    assert [d.parse(ApprovalDecided).outcome for d in log.decisions()] == ["timed_out"]
    assert one.accounted == [("timed_out", "keel-approval")]
    assert two.accounted == []


async def test_a_decision_whose_write_failed_is_published_by_a_later_sweep() -> None:
    log, clock = SharedLog(), FakeClock()
    one = replica(log, clock)
    answer = asyncio.create_task(one.arbiter.submit("ap-1", "reject", "bob"))
    await log.until(1)
    log.down = True
    await one.catch_up(log)
    assert (await answer).status == "rejected"
    assert log.decisions() == []
    log.down = False
    clock.advance(3.0)
    await one.arbiter.sweep()
    assert [d.parse(ApprovalDecided).outcome for d in log.decisions()] == ["rejected"]


async def test_a_slow_acknowledgement_of_its_own_decision_is_not_written_twice() -> None:
    log, clock = SharedLog(), FakeClock()
    log.acknowledged = asyncio.Event()
    one = replica(log, clock)
    answer = asyncio.create_task(one.arbiter.submit("ap-1", "approve", "alice"))
    await log.until(1)
    reading = asyncio.create_task(one.catch_up(log))  # folds, then writes the decision
    await asyncio.sleep(0)
    clock.advance(10.0)  # the broker takes longer than the grace to acknowledge
    sweeping = asyncio.create_task(one.arbiter.sweep())
    await asyncio.sleep(0)
    log.acknowledged.set()
    await asyncio.gather(reading, sweeping)
    await one.catch_up(log)
    await one.arbiter.sweep()
    assert (await answer).status == "approved"
    assert [d.parse(ApprovalDecided).reviewer for d in log.decisions()] == ["alice"]


@pytest.mark.parametrize("outcome", ["approve", "reject"])
async def test_an_action_after_the_decision_is_refused(outcome: Outcome) -> None:
    log, clock = SharedLog(), FakeClock()
    one = replica(log, clock)
    first = asyncio.create_task(one.arbiter.submit("ap-1", "approve", "alice"))
    await log.until(1)
    await one.catch_up(log)
    await first
    late = asyncio.create_task(one.arbiter.submit("ap-1", outcome, "carol"))
    await log.until(3)
    await one.catch_up(log)
    with pytest.raises(FailedPrecondition, match="is already approved by alice"):
        await late
