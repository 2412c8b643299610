"""Live progress of a session for a person: every step printed as it happens and, on a
terminal, a spinner line under them naming what the session is doing now.

Off a terminal (a pipe, a CI log, a test) only the step lines are written: no carriage
returns, no escape codes, nothing redrawn.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from keel_cli.render import describe
from keel_contracts.events import Envelope, TaskProgress

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# Back to column 0 and erase the line: where the spinner was.
CLEAR = "\r\x1b[2K"
TICK_S = 0.1


@dataclass
class StepStatus:
    """What the session is doing, as far as its events tell."""

    iteration: int = 0
    state: str = ""
    tool: str = ""

    def update(self, envelope: Envelope) -> None:
        if envelope.type != TaskProgress.event_type:
            return
        step = envelope.parse(TaskProgress)
        self.iteration = step.iteration
        if step.kind == "state":
            self.state = str(step.detail.get("to", self.state))
        elif step.kind in ("tool_call", "approval_requested"):
            self.tool = str(step.detail.get("tool", ""))
        elif step.kind == "tool_result":
            self.tool = ""

    def text(self) -> str:
        where = f"[{self.iteration}] " if self.iteration else ""
        if not self.state or self.state == "idle":
            return "waiting for the agent loop…"
        if self.state == "planning":
            return f"{where}thinking (waiting for the model)…"
        if self.state == "executing_tool":
            return f"{where}running {self.tool or 'a tool'}…"
        if self.state == "waiting_for_approval":
            return f"{where}waiting for a person to approve {self.tool or 'a tool call'}…"
        if self.state == "processing_result":
            return f"{where}reading the tool's result…"
        return f"{where}{self.state.replace('_', ' ')}"


def status_line(status: StepStatus, frame: int, elapsed_s: float, width: int) -> str:
    """One spinner line, cut to ``width`` so it never wraps (a wrapped line cannot be
    erased with a carriage return)."""
    line = f"{FRAMES[frame % len(FRAMES)]} {status.text()}  {elapsed_s:.1f}s"
    return line if len(line) < width else line[: max(width - 2, 1)] + "…"


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


class LiveDisplay:
    def __init__(
        self,
        stream: TextIO,
        *,
        animate: bool,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] = terminal_width,
    ) -> None:
        self._stream = stream
        self.animate = animate
        self._clock = clock
        self._width = width
        self._started = clock()
        self._frame = 0
        self._drawn = False
        self.status = StepStatus()

    @classmethod
    def for_stream(cls, stream: TextIO) -> LiveDisplay:
        """Animated only where a person watches: a terminal."""
        return cls(stream, animate=stream.isatty())

    def event(self, envelope: Envelope) -> None:
        self.status.update(envelope)
        self.line(describe(envelope))

    def line(self, text: str) -> None:
        """A permanent line, above the spinner."""
        self._erase()
        self._stream.write(text + "\n")
        self._draw()

    def tick(self) -> None:
        """Next spinner frame (the caller's timer decides how often)."""
        self._frame += 1
        self._erase()
        self._draw()

    def close(self) -> None:
        self._erase()
        self._stream.flush()

    def _draw(self) -> None:
        if self.animate:
            elapsed = self._clock() - self._started
            self._stream.write(status_line(self.status, self._frame, elapsed, self._width()))
            self._drawn = True
        self._stream.flush()

    def _erase(self) -> None:
        if self._drawn:
            self._stream.write(CLEAR)
            self._drawn = False
