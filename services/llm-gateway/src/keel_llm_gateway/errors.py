"""Errors of the LLM gateway."""

from __future__ import annotations

from keel_contracts.errors import ConfigError


class ScenarioFileError(ConfigError):
    """A scenario file that cannot be used; the message names the file, line and reason."""
