"""The tool gateway's answers, as its callers see them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ToolStatus = Literal["ok", "error", "denied", "needs_approval"]


class ToolOutcome(BaseModel):
    """One Execute: a tool that failed or was refused is a result, not an error.

    ``output`` and ``error`` may carry text a tool chose (and through it a page, a file, a
    person): callers present them to a model as data, never as instructions.
    """

    model_config = ConfigDict(frozen=True)

    status: ToolStatus
    output: str = ""
    error: str = ""
    rule_id: str = ""
    duration_ms: float = 0.0
