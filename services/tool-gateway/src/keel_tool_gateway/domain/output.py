"""Turn a tool's return value into bounded text for a model, marked as untrusted data."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


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


# Marking lives in keel_core (the agent loop marks what models read); re-exported here.
from keel_contracts.untrusted import mark_untrusted, strip_untrusted  # noqa: E402

__all__ = ["cap", "mark_untrusted", "render", "strip_untrusted"]
