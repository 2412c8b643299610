"""The session state machine: which status may follow which, in one table.

Every status change of a session goes through ``transition``, so an impossible sequence (acting
after the answer, resuming a cancelled session) is a loud error instead of a silent corruption
of a checkpoint. ``finished`` means one of the three terminal states.

    idle -> planning -> executing_tool -> processing_result -> planning ... -> completed
    planning -> completed (the final answer)
    executing_tool -> waiting_for_approval -> executing_tool | processing_result
    planning | processing_result -> waiting_for_approval -> completed | planning (guards)
    executing_tool -> waiting_for_plan -> processing_result (plan mode: the plan's result)
    any non-terminal state -> failed | cancelled
"""

from __future__ import annotations

from typing import Literal

from keel_agent_loop.errors import AgentLoopError

SessionStatus = Literal[
    "idle",
    "planning",
    "executing_tool",
    "processing_result",
    "waiting_for_approval",
    "waiting_for_plan",
    "completed",
    "failed",
    "cancelled",
]

TERMINAL: frozenset[SessionStatus] = frozenset({"completed", "failed", "cancelled"})
_STOP: frozenset[SessionStatus] = frozenset({"failed", "cancelled"})


def _to(*states: SessionStatus) -> frozenset[SessionStatus]:
    return frozenset(states) | _STOP


ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    "idle": _to("planning"),
    # Thinking ends with tool calls to run or with the final answer.
    # ... or with an answer (or, before it, a step) a guard holds for a person.
    "planning": _to("executing_tool", "completed", "waiting_for_approval"),
    "executing_tool": _to("processing_result", "waiting_for_approval", "waiting_for_plan"),
    # After a result: the next call of the same reply, or the next iteration.
    "processing_result": _to("executing_tool", "planning", "waiting_for_approval"),
    # Approved or modified: run the call; rejected or timed out: the refusal is the result.
    # A guard's hold: the answer is published, or the session thinks on.
    "waiting_for_approval": _to("executing_tool", "processing_result", "completed", "planning"),
    # The plan ended (succeeded or failed): its result answers the call.
    "waiting_for_plan": _to("processing_result"),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}


class InvalidTransition(AgentLoopError):
    """A status change the table does not allow: a bug in the caller, never user input."""


def transition(current: SessionStatus, to: SessionStatus) -> SessionStatus:
    """Check that ``current -> to`` is allowed and return ``to``; raise ``InvalidTransition``
    otherwise (a state never moves to itself)."""
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"a session cannot go from {current!r} to {to!r}")
    return to


def is_finished(status: SessionStatus) -> bool:
    return status in TERMINAL
