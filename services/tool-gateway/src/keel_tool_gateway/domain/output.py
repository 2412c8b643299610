"""Turn a tool's return value into bounded text for a model, marked as untrusted data."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

# Marking lives in keel_contracts (the agent loop marks what models read); re-exported here.
from keel_contracts.untrusted import mark_untrusted, mark_untrusted_error, strip_untrusted
from keel_tool_gateway.domain.models import ExecutionResult


def render(value: Any) -> str:
    """Text as is; models and JSON-able values as JSON; anything else through ``str``."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def cap(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` characters, the marker included, so the bound holds for the caller.

    Returns the text and whether it was cut.
    """
    if len(text) <= limit:
        return text, False
    # The marker for keep=limit is at least as long as the final one, so the sum stays in bounds.
    keep = max(0, limit - len(_marker(limit, len(text))))
    return text[:keep] + _marker(keep, len(text)), True


def _marker(kept: int, total: int) -> str:
    return f"\n[truncated: showing the first {kept} of {total} characters]"


def mark_result(tool: str, result: ExecutionResult) -> ExecutionResult:
    """``result`` as a caller that asked for marking gets it: the output marked as untrusted
    data, and a failed call's error too (it quotes the tool or its server: an MCP error body,
    a traceback, sandbox stderr). A denial or an approval request is the gateway's and
    policy's own text and stays as it is."""
    update: dict[str, str] = {}
    if result.output:
        update["output"] = mark_untrusted(tool, result.output)
    if result.status == "error" and result.error:
        update["error"] = mark_untrusted_error(tool, result.error)
    return result.model_copy(update=update) if update else result


__all__ = [
    "cap",
    "mark_result",
    "mark_untrusted",
    "mark_untrusted_error",
    "render",
    "strip_untrusted",
]
