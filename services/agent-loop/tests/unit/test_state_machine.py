"""The session state machine: the allowed transitions and nothing else."""

from __future__ import annotations

import itertools

import pytest

from keel_agent_loop.domain import AgentState
from keel_agent_loop.domain.state_machine import (
    ALLOWED,
    TERMINAL,
    InvalidTransition,
    SessionStatus,
    is_finished,
    transition,
)

STATES: list[SessionStatus] = list(ALLOWED)
LEGAL = {
    ("idle", "planning"),
    ("planning", "executing_tool"),
    ("planning", "completed"),
    ("executing_tool", "processing_result"),
    ("executing_tool", "waiting_for_approval"),
    ("processing_result", "executing_tool"),
    ("processing_result", "planning"),
    ("waiting_for_approval", "executing_tool"),
    ("waiting_for_approval", "processing_result"),
    ("executing_tool", "waiting_for_plan"),
    ("waiting_for_plan", "processing_result"),
    # Guards and escalation hold an answer (or the next step) for a person.
    ("planning", "waiting_for_approval"),
    ("processing_result", "waiting_for_approval"),
    ("waiting_for_approval", "completed"),
    ("waiting_for_approval", "planning"),
} | {(s, end) for s in STATES if s not in TERMINAL for end in ("failed", "cancelled")}


def test_there_are_the_nine_states() -> None:
    assert set(STATES) == {
        "idle",
        "planning",
        "executing_tool",
        "processing_result",
        "waiting_for_approval",
        "waiting_for_plan",
        "completed",
        "failed",
        "cancelled",
    }
    assert {s for s in STATES if is_finished(s)} == {"completed", "failed", "cancelled"}


@pytest.mark.parametrize(("current", "to"), sorted(LEGAL))
def test_legal_transitions_return_the_new_state(current: SessionStatus, to: SessionStatus) -> None:
    assert transition(current, to) == to


@pytest.mark.parametrize(
    ("current", "to"),
    sorted(p for p in itertools.product(STATES, STATES) if p not in LEGAL),
)
def test_every_other_transition_raises(current: SessionStatus, to: SessionStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"from '{current}' to '{to}'"):
        transition(current, to)


def test_agent_state_moves_only_through_the_table() -> None:
    state = AgentState(session_id="s", goal="g")
    assert state.move("planning") == "idle"
    with pytest.raises(InvalidTransition):
        state.move("waiting_for_plan")
    assert state.status == "planning"
    state.complete("done")
    assert state.finished
    with pytest.raises(InvalidTransition):
        state.fail("cancelled", "too late")


def test_a_cancelled_failure_ends_in_cancelled() -> None:
    state = AgentState(session_id="s", goal="g")
    state.fail("cancelled", "cancelled: stop")
    assert (state.status, state.failure_reason) == ("cancelled", "cancelled")
    assert state.finished
