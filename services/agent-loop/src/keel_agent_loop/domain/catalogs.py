"""The tool catalog of each agent profile, as last fetched from the tool gateway.

The loop fetches it before every LLM call (the model is offered what the gateway serves now);
between fetches it labels tool metrics (names outside the catalog become ``unknown``, so a
model cannot blow up metric cardinality) and gives reviewers the schema of a tool's arguments.
"""

from __future__ import annotations

import json
from typing import Any

from keel_agent_loop.domain.models import ToolSpec
from keel_agent_loop.domain.ports import ToolPort
from keel_contracts.errors import KeelError


class ToolCatalogs:
    def __init__(self, tools: ToolPort) -> None:
        self._tools = tools
        self._catalogs: dict[str, dict[str, ToolSpec]] = {}

    async def fetch(self, profile: str) -> list[ToolSpec]:
        """The profile's catalog from the gateway (remembered); raises its ``KeelError``."""
        catalog = await self._tools.list_tools(profile)
        self._catalogs[profile] = {spec.name: spec for spec in catalog}
        return catalog

    def metric_label(self, profile: str, tool: str) -> str:
        return tool if tool in self._catalogs.get(profile, {}) else "unknown"

    async def arguments_schema(self, profile: str, tool: str) -> dict[str, Any]:
        """The schema reviewers' modified arguments must meet; {} when the catalog cannot say
        (the tool gateway validates again before anything runs)."""
        if profile not in self._catalogs:
            try:
                await self.fetch(profile)
            except KeelError:
                return {}
        spec = self._catalogs[profile].get(tool)
        if spec is None:
            return {}
        try:
            schema = json.loads(spec.parameters_json_schema)
        except ValueError:
            return {}
        return schema if isinstance(schema, dict) else {}
