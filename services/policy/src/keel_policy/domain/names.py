"""What a policy's conditions may refer to besides the arguments: its named lists and
variables, the items of topic-backed lists as they change, and the running totals of state.

Literal and file lists are fixed at load (a change of their file reloads the policy); a list
with ``topic: true`` also holds the items of ``keel.policy.lists``, which change while the
service runs: conditions hold the live set itself, so a change is seen by the next decision
without a reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keel_policy.domain.models import NamedList
from keel_policy.domain.state import Meter, StateLedger, StateView
from keel_policy.errors import PolicyFileError


class LiveLists:
    """The topic's items by list name; each list's set is kept (and changed in place) for the
    life of the service, so compiled conditions can hold it."""

    def __init__(self) -> None:
        self._sets: dict[str, set[str]] = {}
        self.version = 0

    def of(self, name: str) -> set[str]:
        return self._sets.setdefault(name, set())

    def replace(self, items: Mapping[str, set[str]]) -> bool:
        """Make every list hold exactly ``items`` (absent names: empty); whether any changed.
        Runs on the event loop between decisions, so none sees half a change."""
        changed = False
        for name in set(self._sets) | set(items):
            now = items.get(name, set())
            current = self.of(name)
            if current != now:
                current.clear()
                current.update(now)
                changed = True
        if changed:
            self.version += 1
        return changed

    def snapshot(self) -> dict[str, list[str]]:
        return {name: sorted(items) for name, items in self._sets.items() if items}


@dataclass
class Names:
    """Everything a condition may name, for one compile."""

    lists: Mapping[str, NamedList] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    live: LiveLists = field(default_factory=LiveLists)
    state: StateView = field(default_factory=StateLedger)
    # Filled while compiling: every meter a state condition reads.
    meters: dict[str, Meter] = field(default_factory=dict)

    def var(self, name: str) -> Any:
        if name not in self.vars:
            raise PolicyFileError(f"unknown variable $vars.{name} (known: {_known(self.vars)})")
        return self.vars[name]

    def named_list(self, name: str) -> NamedList:
        if name not in self.lists:
            raise PolicyFileError(f"unknown list $lists.{name} (known: {_known(self.lists)})")
        return self.lists[name]


def _known(names: Mapping[str, Any]) -> str:
    return ", ".join(sorted(names)) or "none"
