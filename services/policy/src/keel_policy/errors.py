"""Errors of the policy service."""

from __future__ import annotations

from keel_contracts.errors import ConfigError


class PolicyFileError(ConfigError):
    """A policy file or directory that cannot be used; the message names the file, the line
    where known, and the reason. At start-up it stops the service (exit 2); on a hot reload the
    previous policy stays in force."""
