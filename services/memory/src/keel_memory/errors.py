"""Errors of the memory service."""

from __future__ import annotations

from keel_contracts.errors import ConfigError


class StoreOpenError(ConfigError):
    """Milvus cannot be opened with the configured URI; the message says why."""
