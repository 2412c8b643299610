"""The small template language of scenario files: ``{name}`` placeholders, ``{{``/``}}`` for
literal braces. Hand-rolled rather than ``str.format`` because regex groups are named by number
(``{1}``), which ``format`` would read as positional arguments, and because JSON-looking text
such as ``{"a": 1}`` must pass through untouched."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def placeholders(template: str) -> set[str]:
    """Names a template refers to."""
    return {m.group(1) for m in _TOKEN.finditer(template) if m.group(1)}


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill placeholders; unknown names are left as written (the loader rejects them first)."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(match.group(1), token)

    return _TOKEN.sub(substitute, template)


def render_value(value: Any, values: Mapping[str, str]) -> Any:
    """Render every string inside nested dicts and lists; other values pass through."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, dict):
        return {key: render_value(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, values) for item in value]
    return value


def strings_in(value: Any) -> list[str]:
    """Every string inside nested dicts and lists (for validating placeholders on load)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []
