"""A pair of test tools for the fallback stack test: ``unreliable`` always fails as a backend
that is down does (a ``RetryableToolError``, one attempt per call), so its breaker opens after
``breaker_failure_threshold`` calls; it declares ``unreliable_mirror``, which answers, as its
fallback.

Registered only when ``test_tools_dir`` is set, like ``count``: a tool that can only fail has
no place in a production catalog.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.registry import Tool
from keel_tool_gateway.domain.resilience.errors import RetryableToolError
from keel_tool_gateway.domain.resilience.spec import ToolResilience

UNRELIABLE = "unreliable"
MIRROR = "unreliable_mirror"


class QuestionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=200, description="What to look up.")


async def _down(args: QuestionInput) -> str:
    raise RetryableToolError("backend unavailable (test tool)")


async def _mirror(args: QuestionInput) -> str:
    return f"mirror answer to {args.question}"


def make_unreliable_tools() -> list[Tool[QuestionInput]]:
    """``unreliable`` (never answers; one attempt per call, so each call counts once against
    its breaker) and ``unreliable_mirror`` (answers), the first declaring the second."""
    return [
        Tool(
            name=UNRELIABLE,
            description="Test tool: looks the question up on a backend that is down.",
            input_model=QuestionInput,
            run=_down,
            blocking=False,
            effects="read_only",
            resilience=ToolResilience(max_attempts=1),
            fallbacks=(MIRROR,),
        ),
        Tool(
            name=MIRROR,
            description="Test tool: looks the question up on the mirror.",
            input_model=QuestionInput,
            run=_mirror,
            blocking=False,
            effects="read_only",
        ),
    ]
