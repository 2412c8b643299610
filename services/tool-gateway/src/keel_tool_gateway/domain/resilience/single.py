"""One attempt under the tool's time-out, no retries and no breaker: what ``ExecutionService``
uses when no resilience layer is wired in (the service wires ``adapters.resilience``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from keel_tool_gateway.domain.resilience.errors import AttemptTimedOut, CallFailed
from keel_tool_gateway.domain.resilience.spec import ToolResilience

T = TypeVar("T")


class SingleAttempt:
    """A ``ResiliencePort`` that runs the call once, with the same time-out and error shapes
    as the retrying one."""

    async def call(
        self,
        tool: str,
        spec: ToolResilience,
        run: Callable[[], Awaitable[T]],
        timeout_s: float,
    ) -> T:
        limit, per_attempt = timeout_s, False
        if spec.attempt_timeout_s is not None and spec.attempt_timeout_s < limit:
            limit, per_attempt = spec.attempt_timeout_s, True
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                return await run()
        except TimeoutError as exc:
            if not scope.expired():
                raise CallFailed(exc, 1) from exc  # the tool's own TimeoutError
            timed_out = AttemptTimedOut(limit, per_attempt=per_attempt)
            raise CallFailed(timed_out, 1) from exc
        except Exception as exc:
            raise CallFailed(exc, 1) from exc
