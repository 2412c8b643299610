"""Cancel requests this process has heard of (from ``keel.control``, ``keel.tasks`` or its own
``Cancel``), checked by the loop between steps and before each tool call.

A request may arrive before the session starts here (a redelivered task, a slow start), so it
is kept until the session finishes, bounded so a flood of requests for unknown ids cannot grow
it without limit.
"""

from __future__ import annotations

from collections import OrderedDict


class CancelFlags:
    def __init__(self, capacity: int = 10_000) -> None:
        self._reasons: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def request(self, session_id: str, reason: str) -> None:
        self._reasons[session_id] = reason or "cancelled"
        self._reasons.move_to_end(session_id)
        while len(self._reasons) > self._capacity:
            self._reasons.popitem(last=False)

    def requested(self, session_id: str) -> str | None:
        return self._reasons.get(session_id)

    def forget(self, session_id: str) -> None:
        self._reasons.pop(session_id, None)
