"""Running totals for ``state:`` conditions: what calls policy let through, per meter and key.

A *meter* is what a state condition measures — the calls of tools matching a glob, or the sum
of one argument path over them — and is named by that definition (``count|send_*`` or
``sum:$.amount|transfer``) so it survives reloads that keep it. Each call that runs (allowed,
or approved by a person) is *reserved* on every meter whose glob matches its tool, under
the caller's session, tenant and agent, as an entry keyed by the call's id: a call seen twice
(its approved re-send carries the same idempotency key) counts once. Totals are over a sliding
window ending at the decision. See docs/adr/0010-policy-state.md for durability and races.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

PERS = ("session", "tenant", "agent")


@dataclass(frozen=True)
class Meter:
    """What is measured: ``path`` None counts calls, else sums the numbers it selects."""

    tool: str
    path: str | None

    @property
    def id(self) -> str:
        measure = "count" if self.path is None else f"sum:{self.path}"
        return f"{measure}|{self.tool}"

    def fits(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.tool)


@dataclass(frozen=True)
class Charge:
    """One reservation to record: ``amount`` on ``meter`` for the caller ``key``
    (``per``:``value``, e.g. ``tenant:acme``)."""

    meter: str
    key: str
    amount: float


@dataclass(frozen=True)
class StateEntry:
    meter: str
    key: str
    call_id: str
    at: float
    amount: float


class StateView(Protocol):
    """Totals so far, read on the decision path (in memory; ``adapters/state_topic.py`` keeps
    it in step with the topic)."""

    def total(self, meter: str, key: str, since: float, exclude: str = "") -> float: ...


class StateLedger:
    """Entries by (meter, key) and call id: the in-memory fold of ``keel.policy.state``.

    Adding an entry already held (same call id) changes nothing, so the follower re-reading
    our own reservations, a replay after a restart and a re-sent approved call are all
    counted once.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}

    def add(self, entry: StateEntry) -> bool:
        calls = self._entries.setdefault((entry.meter, entry.key), {})
        if entry.call_id in calls:
            return False
        calls[entry.call_id] = (entry.at, entry.amount)
        return True

    def remove(self, entry: StateEntry) -> None:
        """Withdraw a reservation whose durable write failed."""
        calls = self._entries.get((entry.meter, entry.key))
        if calls is not None:
            calls.pop(entry.call_id, None)

    def total(self, meter: str, key: str, since: float, exclude: str = "") -> float:
        """The amounts reserved after ``since``, without the call ``exclude`` (a call being
        decided again must not see itself twice)."""
        calls = self._entries.get((meter, key))
        if not calls:
            return 0.0
        return sum(amount for call, (at, amount) in calls.items() if at > since and call != exclude)

    def prune(self, before: float) -> int:
        """Forget entries older than ``before`` (past every window); how many."""
        dropped = 0
        for key in list(self._entries):
            calls = self._entries[key]
            old = [call for call, (at, _) in calls.items() if at <= before]
            for call in old:
                del calls[call]
            dropped += len(old)
            if not calls:
                del self._entries[key]
        return dropped


def entries(charges: Iterable[Charge], call_id: str, at: float) -> list[StateEntry]:
    return [StateEntry(c.meter, c.key, call_id, at, c.amount) for c in charges]


class Reservations(Protocol):
    """Where a call let through is counted (``adapters/state_topic.py`` makes it durable)."""

    async def reserve(self, charges: Sequence[Charge], call_id: str, at: float) -> None: ...


class LocalReservations:
    """Counted in memory only: for tests, ``keel policy test`` and embedding."""

    def __init__(self, ledger: StateLedger) -> None:
        self.ledger = ledger

    async def reserve(self, charges: Sequence[Charge], call_id: str, at: float) -> None:
        for entry in entries(charges, call_id, at):
            self.ledger.add(entry)
