"""The tools the gateway knows: each with a pydantic input model that is its JSON schema, and
which of them each agent profile is shown.

A profile is a list of tool-name globs (``fnmatch``: ``file_*``, ``mcp.*``). The catalog a
profile gets is what its model is told it can call; policy still decides every call, so a
profile narrows what is offered and is no permission by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel_tool_gateway.domain.resilience.spec import DEFAULT_RESILIENCE, ToolResilience
from keel_tool_gateway.errors import DuplicateTool

M = TypeVar("M", bound=BaseModel)

DEFAULT_PROFILE = "default"
DEFAULT_PROFILE_TOOLS = (
    "calculator",
    "clock",
    "noop",
    "count",
    "count_once",
    "send_email",
    "python",
    "http_fetch",
    "file_*",
    "memory_*",
)


# What running a call a second time would do, declared by the tool (the gateway cannot tell):
# - "read_only": nothing outside changes; a second run is harmless.
# - "idempotent": it acts, but deduplicates by the call's idempotency key (``current_call()``),
#   so a run repeated after a crash makes the effect once.
# - "at_most_once": it acts and cannot deduplicate. The gateway records an intent before the run
#   and never runs a key again whose earlier run was cut short: that call's outcome is unknown.
Effects = Literal["read_only", "idempotent", "at_most_once"]


class ToolError(Exception):
    """A failure a tool reports on purpose; its message goes to the model as written."""


class ToolUnavailable(ToolError):
    """The tool's own backend is down and the tool did not run (an MCP server being
    reconnected): the gateway answers UNAVAILABLE, so the caller waits the outage out instead
    of showing the model an error, and nothing is recorded for the key."""


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
    # The JSON schema models are shown; None: the input model's. Set by tools whose input
    # model is built from a schema they did not write (MCP), so the model sees the original.
    parameters_schema: dict[str, Any] | None = None
    # Which failures are retried and which dependency's circuit breaker guards the tool.
    resilience: ToolResilience = DEFAULT_RESILIENCE
    # False: quick, bounded sync work (arithmetic) runs inline instead of on a thread.
    blocking: bool = True
    # Unknown tools are assumed to act and not to deduplicate.
    effects: Effects = "at_most_once"
    # Output cap of this tool (characters); None: the gateway's max_output_chars. Set by MCP
    # tools, whose caps are configured per server and per tool.
    max_output_chars: int | None = None
    # Alternatives, in order, tried when this tool's circuit breaker is open (each under its
    # own policy decision); the setting ``resilience.fallbacks`` replaces them per tool.
    fallbacks: tuple[str, ...] = ()


class ProfileSettings(BaseModel):
    """Which tools each agent profile is offered (env ``KEEL_TOOL_GATEWAY_PROFILES__…``).

    ``profiles`` maps a profile name to tool-name globs; a request for a profile that is not
    listed (or for none) gets ``default_profile``'s tools. Example:
    ``KEEL_TOOL_GATEWAY_PROFILES__PROFILES='{"default": ["calculator", "mcp.*"],
    "restricted": ["calculator"]}'``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_profile: str = DEFAULT_PROFILE
    profiles: dict[str, list[str]] = Field(
        default_factory=lambda: {
            DEFAULT_PROFILE: list(DEFAULT_PROFILE_TOOLS),
            "restricted": ["calculator"],
        }
    )

    @model_validator(mode="after")
    def _default_is_listed(self) -> ProfileSettings:
        if self.default_profile not in self.profiles:
            raise ValueError(
                f"default_profile {self.default_profile!r} is not one of the profiles "
                f"({', '.join(sorted(self.profiles)) or 'none'})"
            )
        return self

    def patterns_for(self, profile: str) -> list[str]:
        """The globs of ``profile``; an unknown or empty name gets the default profile's."""
        return self.profiles.get(profile) or self.profiles[self.default_profile]

    def allows(self, profile: str, tool: str) -> bool:
        return any(fnmatchcase(tool, pattern) for pattern in self.patterns_for(profile))


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    parameters_schema: dict[str, Any]
    timeout_s: float

    def openai(self) -> dict[str, Any]:
        """The entry as a function tool in the OpenAI chat-completions ``tools`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters_schema,
            },
        }


class ToolRegistry:
    """Every registered tool, and the per-profile view of them.

    Without ``profiles`` every profile sees every tool (the behaviour before profiles existed,
    kept for tests and embedders that register their own tools).
    """

    def __init__(
        self, default_timeout_s: float = 10.0, profiles: ProfileSettings | None = None
    ) -> None:
        self.default_timeout_s = default_timeout_s
        self.profiles = profiles
        self._tools: dict[str, Tool[Any]] = {}
        # Schemas are computed once per tool: ListTools is called every agent iteration.
        self._schemas: dict[str, dict[str, Any]] = {}

    def register(self, tool: Tool[Any]) -> None:
        if tool.name in self._tools:
            raise DuplicateTool(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def unregister(self, name: str) -> None:
        """Drop a tool (MCP servers going away at shutdown); unknown names are ignored."""
        self._tools.pop(name, None)
        self._schemas.pop(name, None)

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    def timeout_of(self, tool: Tool[Any]) -> float:
        return tool.timeout_s if tool.timeout_s is not None else self.default_timeout_s

    def offered_to(self, profile: str, name: str) -> bool:
        """Whether ``profile``'s catalog lists ``name`` (registered or not)."""
        return self.profiles is None or self.profiles.allows(profile, name)

    def catalog(self, profile: str | None = None) -> list[CatalogEntry]:
        """The tools ``profile`` is offered (every tool when ``profile`` is None), sorted by
        name, with the JSON schema a model fills in to call each."""
        return [
            CatalogEntry(
                name=tool.name,
                description=tool.description,
                parameters_schema=self._schema_of(tool),
                timeout_s=self.timeout_of(tool),
            )
            for tool in sorted(self._tools.values(), key=lambda t: t.name)
            if profile is None or self.offered_to(profile, tool.name)
        ]

    def openai_tools(self, profile: str | None = None) -> list[dict[str, Any]]:
        """``catalog(profile)`` in the format chat models take as ``tools``."""
        return [entry.openai() for entry in self.catalog(profile)]

    def _schema_of(self, tool: Tool[Any]) -> dict[str, Any]:
        schema = self._schemas.get(tool.name)
        if schema is None:
            schema = tool.parameters_schema or tool.input_model.model_json_schema()
            self._schemas[tool.name] = schema
        return schema

    def __iter__(self) -> Iterator[Tool[Any]]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
