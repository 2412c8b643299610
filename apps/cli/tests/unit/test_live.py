"""Live progress of `keel submit` / `keel watch`: plain step lines off a terminal, a spinner
line redrawn under them on one (fed frame by frame to a fake stream, no timers)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

from keel_cli.live import CLEAR, FRAMES, LiveDisplay, StepStatus, status_line
from keel_cli.watch import print_session
from keel_contracts.events import Envelope, EventData, TaskCompleted, TaskProgress
from keel_core.testing import FakeClock


def wrap(data: EventData) -> Envelope:
    return Envelope.wrap(data, source="test", session_id="s1")


def progress(kind: str, iteration: int, **detail: Any) -> Envelope:
    return wrap(TaskProgress(kind=kind, iteration=iteration, detail=detail))  # type: ignore[arg-type]


SESSION = [
    progress("state", 0, **{"from": "idle", "to": "planning"}),
    progress("started", 0, goal="What is (17 * 23) + 4?"),
    progress("thought", 1, content="", tool_calls=["calculator"]),
    progress("state", 1, **{"from": "planning", "to": "executing_tool"}),
    progress("tool_call", 1, tool="calculator", arguments='{"expression": "(17 * 23) + 4"}'),
    progress("tool_result", 1, tool="calculator", status="ok", output="395"),
    progress("state", 1, **{"from": "processing_result", "to": "planning"}),
    progress("thought", 2, content="The answer is 395.", tool_calls=[]),
    progress("completed", 2, answer="The answer is 395."),
    wrap(TaskCompleted(answer="The answer is 395.", iterations=2)),
]

EXPECTED_LINES = [
    "  [0] · idle → planning",
    "  [0] started: 'What is (17 * 23) + 4?'",
    "  [1] thinking…  (calls calculator)",
    "  [1] · planning → executing_tool",
    '  [1] → calculator {"expression": "(17 * 23) + 4"}',
    "  [1] ← calculator ok: 395",
    "  [1] · processing_result → planning",
    "  [2] thinking… The answer is 395.",
    "  [2] done: The answer is 395.",
    "  completed after 2 iteration(s) (0+0 tokens, $0.0000)",
]


def test_off_a_terminal_only_the_step_lines_are_written() -> None:
    out = io.StringIO()
    display = LiveDisplay(out, animate=False)
    for envelope in SESSION:
        display.event(envelope)
        display.tick()  # a timer would not run here, but ticking must not draw either
    display.close()
    assert out.getvalue().splitlines() == EXPECTED_LINES
    assert "\r" not in out.getvalue()
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_a_spinner_line_follows_the_steps_and_is_erased_before_each() -> None:
    out = io.StringIO()
    clock = FakeClock(100.0)
    display = LiveDisplay(out, animate=True, clock=clock, width=lambda: 80)
    display.event(SESSION[0])  # planning
    clock.now += 1.25
    display.tick()
    assert out.getvalue() == (
        "  [0] · idle → planning\n"
        f"{FRAMES[0]} thinking (waiting for the model)…  0.0s"
        f"{CLEAR}{FRAMES[1]} thinking (waiting for the model)…  1.2s"
    )
    for envelope in SESSION[1:5]:
        display.event(envelope)
    # The step line replaced the spinner, and the spinner came back under it, naming the tool.
    assert out.getvalue().endswith(
        f'{CLEAR}  [1] → calculator {{"expression": "(17 * 23) + 4"}}\n'
        f"{FRAMES[1]} [1] running calculator…  1.2s"
    )
    display.close()
    assert out.getvalue().endswith(CLEAR)
    # Stripped of the spinner, what stays on screen is exactly the plain output.
    kept = [line.split(CLEAR)[-1] for line in out.getvalue().split("\n")]
    assert [line for line in kept if line and not line.startswith(tuple(FRAMES))] == (
        EXPECTED_LINES[:5]
    )


def test_the_status_names_what_the_session_does_now() -> None:
    status = StepStatus()
    assert status.text() == "waiting for the agent loop…"
    steps = [
        (progress("state", 1, to="planning"), "[1] thinking (waiting for the model)…"),
        (progress("state", 1, to="executing_tool"), "[1] running a tool…"),
        (progress("tool_call", 1, tool="send_email"), "[1] running send_email…"),
        (
            progress("state", 1, to="waiting_for_approval"),
            "[1] waiting for a person to approve send_email…",
        ),
        (
            progress("tool_result", 1, tool="send_email", status="ok"),
            "[1] waiting for a person to approve a tool call…",
        ),
        (progress("state", 1, to="processing_result"), "[1] reading the tool's result…"),
        (progress("state", 2, to="completed"), "[2] completed"),
    ]
    for envelope, text in steps:
        status.update(envelope)
        assert status.text() == text


def test_the_spinner_line_never_wraps() -> None:
    status = StepStatus(iteration=3, state="executing_tool", tool="t" * 200)
    line = status_line(status, 7, 12.0, width=40)
    assert len(line) < 40
    assert line.startswith(FRAMES[7] + " [3] running ttt")
    assert line.endswith("…")
    assert (
        status_line(StepStatus(), 10, 0.0, 80) == f"{FRAMES[0]} waiting for the agent loop…  0.0s"
    )


class Follower:
    def __init__(self, envelopes: list[Envelope]) -> None:
        self._envelopes = envelopes

    async def events(self, session_id: str) -> AsyncIterator[Envelope]:
        for envelope in self._envelopes:
            yield envelope


async def test_print_session_prints_each_step_and_returns_the_result() -> None:
    out = io.StringIO()
    result = await print_session(
        Follower(SESSION),  # type: ignore[arg-type]
        "s1",
        timeout_s=5,
        display=LiveDisplay(out, animate=False),
    )
    assert result is SESSION[-1]
    assert out.getvalue().splitlines() == EXPECTED_LINES
