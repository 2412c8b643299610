"""Test doubles for retries and breakers: a clock that moves only when slept on, and a
dependency that fails on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Generic

from pydantic import BaseModel, ConfigDict

from keel_tool_gateway.adapters.resilience.breaker import BreakerState
from keel_tool_gateway.domain.registry import M, Tool
from keel_tool_gateway.domain.resilience.errors import RetryableToolError
from keel_tool_gateway.domain.resilience.spec import DEFAULT_RESILIENCE, ToolResilience


@dataclass
class FakeTime:
    """``clock`` (monotonic and wall) and ``sleep`` for ``Resilience``: sleeping advances the
    clock at once and is recorded, so a test sees every backoff without waiting for it."""

    now: float = 1_700_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class ResilientTool(Tool[M], Generic[M]):
    """A ``Tool`` that declares its retries and breaker."""

    resilience: ToolResilience = DEFAULT_RESILIENCE


class FlakyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class FlakyDependency:
    """A tool over a dependency that fails its first ``failures`` calls (``always``: every
    call) with ``error``, then answers ``ok <n>``. ``hang_s`` > 0: a failing call hangs that
    long instead of raising (a dependency that stopped answering). ``calls`` counts runs."""

    name: str = "flaky"
    failures: int = 0
    always: bool = False
    error: Exception = field(default_factory=lambda: RetryableToolError("backend unavailable"))
    hang_s: float = 0.0
    resilience: ToolResilience = DEFAULT_RESILIENCE
    timeout_s: float | None = None
    calls: int = 0

    @property
    def tool(self) -> ResilientTool[FlakyInput]:
        return ResilientTool(
            name=self.name,
            description="A dependency that fails on demand (tests only).",
            input_model=FlakyInput,
            run=self._run,
            timeout_s=self.timeout_s,
            resilience=self.resilience,
        )

    def heal(self) -> None:
        self.always = False
        self.failures = 0

    async def _run(self, _: FlakyInput) -> Any:
        self.calls += 1
        if self.always or self.calls <= self.failures:
            if self.hang_s:
                await asyncio.sleep(self.hang_s)
            raise self.error
        return f"ok {self.calls}"


@dataclass
class RecordingObserver:
    """A ``ResilienceObserver`` that keeps what it was told."""

    transitions: list[tuple[str, BreakerState, BreakerState]] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    retries: list[tuple[str, int, float]] = field(default_factory=list)

    def breaker_changed(self, name: str, state: BreakerState, previous: BreakerState) -> None:
        self.transitions.append((name, previous, state))

    def breaker_rejected(self, name: str) -> None:
        self.rejections.append(name)

    def retried(self, tool: str, attempt: int, wait_s: float) -> None:
        self.retries.append((tool, attempt, wait_s))
