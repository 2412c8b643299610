"""Tool names as OpenAI-compatible APIs accept them, and back.

Keel's tool names may contain characters those APIs refuse (``mcp.files.read``: function names
must match ``[a-zA-Z0-9_-]{1,64}``). Each request gets a reversible mapping, so the model sees
safe names and the agent loop gets the real ones back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64


class ToolNames:
    def __init__(self, names: Iterable[str]) -> None:
        self._to_wire: dict[str, str] = {}
        self._from_wire: dict[str, str] = {}
        for name in names:
            self._add(name)

    def _add(self, name: str) -> None:
        if name in self._to_wire:
            return
        base = _UNSAFE.sub("_", name)[:MAX_NAME] or "tool"
        wire, suffix = base, 2
        while wire in self._from_wire:
            tail = f"_{suffix}"
            wire, suffix = base[: MAX_NAME - len(tail)] + tail, suffix + 1
        self._to_wire[name] = wire
        self._from_wire[wire] = name

    def to_wire(self, name: str) -> str:
        """The safe name; a name the request did not list (in history) is made safe too."""
        if name not in self._to_wire:
            self._add(name)
        return self._to_wire[name]

    def from_wire(self, wire: str) -> str:
        """The real name of a tool the model called; unknown names are returned as sent."""
        return self._from_wire.get(wire, wire)
