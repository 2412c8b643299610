"""The tools the gateway knows: each with a pydantic input model that is its JSON schema."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from keel_tool_gateway.errors import DuplicateTool

M = TypeVar("M", bound=BaseModel)


class ToolError(Exception):
    """A failure a tool reports on purpose; its message goes to the model as written."""


@dataclass(frozen=True)
class Tool(Generic[M]):
    """One tool. ``run`` gets the validated input and may be sync (run on a worker thread, so
    it must not block the event loop) or async. Its return value becomes the output text."""

    name: str
    description: str
    input_model: type[M]
    run: Callable[[M], Any] | Callable[[M], Awaitable[Any]]
    # None: the gateway's default time-out.
    timeout_s: float | None = None


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    parameters_schema: dict[str, Any]
    timeout_s: float


class ToolRegistry:
    def __init__(self, default_timeout_s: float = 10.0) -> None:
        self.default_timeout_s = default_timeout_s
        self._tools: dict[str, Tool[Any]] = {}

    def register(self, tool: Tool[Any]) -> None:
        if tool.name in self._tools:
            raise DuplicateTool(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    def timeout_of(self, tool: Tool[Any]) -> float:
        return tool.timeout_s if tool.timeout_s is not None else self.default_timeout_s

    def catalog(self) -> list[CatalogEntry]:
        """Every tool, sorted by name, with the JSON schema a model fills in to call it."""
        return [
            CatalogEntry(
                name=tool.name,
                description=tool.description,
                parameters_schema=tool.input_model.model_json_schema(),
                timeout_s=self.timeout_of(tool),
            )
            for tool in sorted(self._tools.values(), key=lambda t: t.name)
        ]

    def __iter__(self) -> Iterator[Tool[Any]]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
