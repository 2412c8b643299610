"""Errors of the policy service."""

from __future__ import annotations

from keel_core.errors import ConfigError


class PolicyFileError(ConfigError):
    """A policy file that cannot be used; the message names the file, line and reason."""
