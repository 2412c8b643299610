"""A tool that does nothing: the benchmark uses it to measure the gateway's own overhead."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from keel_tool_gateway.domain.registry import Tool


class NoopInput(BaseModel):
    # Any arguments are accepted and ignored, so a benchmark can vary the payload size.
    model_config = ConfigDict(extra="ignore")


async def _noop(_: NoopInput) -> str:
    return "ok"


NOOP = Tool(
    name="noop",
    description="Does nothing and returns 'ok'.",
    input_model=NoopInput,
    run=_noop,
    blocking=False,
    effects="read_only",
)
